// WebGPU on Node through Dawn (the `webgpu` package). On a machine without a GPU driver it
// finds SwiftShader (Debian's chromium ships it) by itself; otherwise it says what is missing.
import { existsSync, mkdtempSync, readdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { GPUError } from '../errors.ts';
import { describeAdapter, requestChunklmDevice, type GpuContextOptions, type GpuFeatures } from '../gpu/context.ts';

const swiftShaderIcds = ['/usr/lib/chromium/vk_swiftshader_icd.json', '/usr/lib/chromium-browser/vk_swiftshader_icd.json'];
const icdDirs = ['/usr/share/vulkan/icd.d', '/etc/vulkan/icd.d', '/usr/local/share/vulkan/icd.d'];

function hasSystemVulkanDriver(): boolean {
  return icdDirs.some((d) => existsSync(d) && readdirSync(d).some((f) => f.endsWith('.json')));
}

export interface NodeDevice {
  device: GPUDevice;
  adapterInfo: string;
  features: GpuFeatures;
  isSwiftShader: boolean;
}

type DawnModule = { create(flags: string[]): GPU; globals: Record<string, unknown> };

// The Dawn instance must outlive every device made from it: if it is garbage collected, Dawn
// tears down underneath live devices and the process aborts. Keep them all.
const liveInstances: GPU[] = [];

export async function acquireNodeDevice(opts: GpuContextOptions = {}): Promise<NodeDevice> {
  // The Vulkan loader complains on stderr when XDG_RUNTIME_DIR is unset (headless servers, CI);
  // give it a private directory so `--json` output stays clean.
  if (!process.env.XDG_RUNTIME_DIR && process.platform === 'linux') {
    process.env.XDG_RUNTIME_DIR = mkdtempSync(join(tmpdir(), 'chunklm-xdg-'));
  }
  let dawn: DawnModule;
  try {
    dawn = (await import('webgpu')) as unknown as DawnModule;
  } catch (err) {
    throw new GPUError('no-webgpu', `cannot load Dawn (the 'webgpu' package): ${(err as Error).message}. Run npm install.`, {}, { cause: err });
  }
  Object.assign(globalThis, dawn.globals);
  const explicit = Boolean(process.env.VK_ICD_FILENAMES || process.env.VK_DRIVER_FILES);
  const swiftIcd = swiftShaderIcds.find((p) => existsSync(p));
  // Without a GPU driver, go straight to SwiftShader; with one, try it first and fall back to
  // SwiftShader when it offers no usable adapter (e.g. a software Vulkan driver Dawn rejects).
  if (!explicit && process.platform === 'linux' && !hasSystemVulkanDriver() && swiftIcd) process.env.VK_ICD_FILENAMES = swiftIcd;
  let adapter = await requestAdapter(dawn);
  if (!adapter && !explicit && swiftIcd && process.env.VK_ICD_FILENAMES !== swiftIcd) {
    process.env.VK_ICD_FILENAMES = swiftIcd;
    adapter = await requestAdapter(dawn);
  }
  if (!adapter) throw new GPUError('no-adapter', `no WebGPU adapter found. ${missingHint()}`);
  const isSwiftShader = Boolean(process.env.VK_ICD_FILENAMES?.includes('swiftshader'));
  const { device, features } = await requestChunklmDevice(adapter, opts);
  return { device, adapterInfo: describeAdapter(adapter.info) + (isSwiftShader ? ' (SwiftShader)' : ''), features, isSwiftShader };
}

async function requestAdapter(dawn: DawnModule): Promise<GPUAdapter | null> {
  try {
    const gpu = dawn.create([]);
    liveInstances.push(gpu);
    return await gpu.requestAdapter({ powerPreference: 'high-performance' });
  } catch (err) {
    throw new GPUError('no-adapter', `Dawn could not start: ${(err as Error).message}. ${missingHint()}`, {}, { cause: err });
  }
}

function missingHint(): string {
  const vulkan = ['/usr/lib/x86_64-linux-gnu/libvulkan.so.1', '/usr/lib/aarch64-linux-gnu/libvulkan.so.1'].some((p) => existsSync(p));
  if (!vulkan) return "The Vulkan loader is missing: install libvulkan1 (Debian: apt-get install libvulkan1).";
  if (!hasSystemVulkanDriver() && !swiftShaderIcds.some((p) => existsSync(p))) {
    return "No Vulkan driver is installed: install your GPU's Vulkan driver, or Debian's chromium for the SwiftShader software adapter.";
  }
  return 'Check that the Vulkan driver works (vulkaninfo).';
}
