// WebGPU on Node through Dawn (the `webgpu` package). On a machine without a GPU it goes straight
// to SwiftShader (Debian's chromium ships it); otherwise it says what is missing.
import { existsSync, mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { GPUError } from '../errors.ts';
import { describeAdapter, requestChunklmDevice, type GpuContextOptions, type GpuFeatures } from '../gpu/context.ts';

const swiftShaderIcds = ['/usr/lib/chromium/vk_swiftshader_icd.json', '/usr/lib/chromium-browser/vk_swiftshader_icd.json'];
const icdDirs = ['/usr/share/vulkan/icd.d', '/etc/vulkan/icd.d', '/usr/local/share/vulkan/icd.d'];

function hasSystemVulkanDriver(): boolean {
  return icdDirs.some((d) => existsSync(d) && readdirSync(d).some((f) => f.endsWith('.json')));
}

/** The system's Vulkan driver manifests, less the software rasterizers (lavapipe, SwiftShader). */
function hardwareIcds(): string[] {
  return icdDirs
    .filter((d) => existsSync(d))
    .flatMap((d) => readdirSync(d).filter((f) => f.endsWith('.json') && !/lvp|swiftshader/i.test(f)).map((f) => join(d, f)));
}

/**
 * Whether the machine has a GPU a Vulkan driver could drive: a DRM render node (Mesa, AMD, Intel,
 * NVIDIA's open module), NVIDIA's proprietary device, or WSL's GPU bridge. Without one, the system's
 * Vulkan drivers can only be software ones (Mesa's lavapipe, which Dawn rejects with a warning
 * carrying a C++ source line) or hardware drivers that find nothing.
 */
function hasGpuDevice(): boolean {
  try {
    if (readdirSync('/dev/dri').some((f) => f.startsWith('renderD'))) return true;
  } catch {
    // no /dev/dri
  }
  return ['/dev/nvidia0', '/dev/dxg'].some((p) => existsSync(p));
}

/**
 * Vulkan drivers (SwiftShader and Mesa's alike) print "XDG_RUNTIME_DIR is invalid or not set" while
 * they start when it is unset (headless servers, CI), so `--json` output would not stay clean: they
 * get a private empty folder, removed as soon as the device exists (they look at it only while they
 * start), or at exit if the process ends first. Returns the remover (a no-op when none was made).
 */
function privateRuntimeDir(): () => void {
  if (process.env.XDG_RUNTIME_DIR || process.platform !== 'linux') return () => {};
  const dir = mkdtempSync(join(tmpdir(), 'chunklm-xdg-'));
  process.env.XDG_RUNTIME_DIR = dir;
  const remove = (): void => {
    process.off('exit', remove);
    if (process.env.XDG_RUNTIME_DIR === dir) delete process.env.XDG_RUNTIME_DIR;
    rmSync(dir, { recursive: true, force: true });
  };
  process.on('exit', remove);
  return remove;
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
  let dawn: DawnModule;
  try {
    dawn = (await import('webgpu')) as unknown as DawnModule;
  } catch (err) {
    throw new GPUError('no-webgpu', `cannot load Dawn (the 'webgpu' package): ${(err as Error).message}. Run npm install.`, {}, { cause: err });
  }
  Object.assign(globalThis, dawn.globals);
  const explicit = Boolean(process.env.VK_ICD_FILENAMES || process.env.VK_DRIVER_FILES);
  const swiftIcd = swiftShaderIcds.find((p) => existsSync(p));
  // Without a GPU (or a driver for one), SwiftShader is the adapter there will be: it is asked for
  // alone, so no other driver starts and prints anything. With a GPU, the hardware drivers are tried
  // first (without lavapipe, which Dawn would reject aloud) and SwiftShader only when they offer no
  // usable adapter.
  const hardware = !explicit && process.platform === 'linux' && hasGpuDevice() ? hardwareIcds() : [];
  const swiftShaderOnly = !explicit && process.platform === 'linux' && swiftIcd !== undefined && hardware.length === 0;
  if (swiftShaderOnly) process.env.VK_ICD_FILENAMES = swiftIcd;
  else if (hardware.length > 0) process.env.VK_ICD_FILENAMES = hardware.join(':');
  const removeRuntimeDir = privateRuntimeDir();
  try {
    let adapter = await requestAdapter(dawn);
    if (!adapter && !explicit && swiftIcd && process.env.VK_ICD_FILENAMES !== swiftIcd) {
      process.env.VK_ICD_FILENAMES = swiftIcd;
      adapter = await requestAdapter(dawn);
    }
    if (!adapter) throw new GPUError('no-adapter', `no WebGPU adapter found. ${missingHint()}`);
    const isSwiftShader = Boolean(process.env.VK_ICD_FILENAMES?.includes('swiftshader'));
    const { device, features } = await requestChunklmDevice(adapter, opts);
    return { device, adapterInfo: describeAdapter(adapter.info) + (isSwiftShader ? ' (SwiftShader)' : ''), features, isSwiftShader };
  } finally {
    removeRuntimeDir();
  }
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
