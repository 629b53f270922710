// Public surface of the GGUF layer (browser-safe). The Node file source is imported directly
// from './node-file-source.ts' so that browser bundles never see node:fs.
export { type ByteSource, BlobSource, MemorySource, UrlSource, type UrlSourceOptions } from './source.ts';
export { DEFAULT_RETRY, probeFile, readRange, streamRange, type RangeRequestOptions, type RemoteFileInfo, type RetryPolicy } from './http.ts';
export {
  ConcatSource,
  SPLIT_KEYS,
  isOpenedGGUF,
  openGGUF,
  parseSplitName,
  splitInfo,
  splitGGUFBytes,
  splitPartNames,
  writeSplitGGUF,
  type OpenedGGUF,
  type SplitName,
} from './split.ts';
export {
  GGUF_ELEMENT_TYPE,
  GGUFValueType,
  ggufValueTypeName,
  parseGGUF,
  readTensorBytes,
  type GGUFFile,
  type GGUFTensorInfo,
  type GGUFTypedArray,
  type GGUFValue,
  type ParseOptions,
  type ReadTensorOptions,
} from './reader.ts';
export {
  GGMLType,
  bf16ToF32,
  dequantize,
  f16ToF32,
  f32ToBf16,
  f32ToF16,
  ggmlTypeInfo,
  ggmlTypeName,
  isKnownGGMLType,
  quantize,
  tensorByteLength,
  type GGMLTypeInfo,
} from './quant.ts';
export {
  hasMeta,
  metaArray,
  metaBool,
  metaF32,
  metaI32,
  metaInt,
  metaNumberArray,
  metaString,
  metaStringArray,
  metaU32,
  type GGUFMetadata,
} from './meta.ts';
export {
  gguf,
  metadataFromFile,
  writeGGUF,
  type GGUFArrayValue,
  type GGUFScalarValue,
  type GGUFTypedValue,
  type GGUFValueTypeLike,
  type GGUFWriteInput,
  type GGUFWriteTensor,
  type MetadataFromFileOptions,
} from './writer.ts';
