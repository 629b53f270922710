// Uniform arena: every dispatch's params live in one 256-byte slot of one uniform buffer.
// Values are written into a CPU mirror and uploaded with a single writeBuffer per step, so
// bind groups are made once and never rebuilt.
import { GPUError } from '../errors.ts';

export const ARENA_SLOT_BYTES = 256;

export interface ArenaSlot {
  /** Byte offset of the slot in the arena buffer. */
  readonly offset: number;
  readonly u32: Uint32Array;
  readonly i32: Int32Array;
  readonly f32: Float32Array;
  /** Bind group resource for binding 0 (`var<uniform> p: Params`). */
  readonly binding: GPUBufferBinding;
}

export class UniformArena {
  readonly buffer: GPUBuffer;
  private readonly mirror: ArrayBuffer;
  private used = 0;
  private dirtyLo = Infinity;
  private dirtyHi = 0;

  constructor(
    private readonly device: GPUDevice,
    readonly capacitySlots = 8192,
  ) {
    this.buffer = device.createBuffer({
      label: 'uniform-arena',
      size: capacitySlots * ARENA_SLOT_BYTES,
      usage: GPUBufferUsage.UNIFORM | GPUBufferUsage.COPY_DST,
    });
    this.mirror = new ArrayBuffer(capacitySlots * ARENA_SLOT_BYTES);
  }

  get slotsUsed(): number {
    return this.used;
  }

  alloc(): ArenaSlot {
    if (this.used >= this.capacitySlots) {
      throw new GPUError('arena-full', `uniform arena is full (${this.capacitySlots} slots); raise its capacity`);
    }
    const offset = this.used * ARENA_SLOT_BYTES;
    this.used++;
    // Views write straight into the mirror; writers call `markDirty` (writeParams does).
    const slot: ArenaSlot = {
      offset,
      u32: new Uint32Array(this.mirror, offset, ARENA_SLOT_BYTES / 4),
      i32: new Int32Array(this.mirror, offset, ARENA_SLOT_BYTES / 4),
      f32: new Float32Array(this.mirror, offset, ARENA_SLOT_BYTES / 4),
      binding: { buffer: this.buffer, offset, size: ARENA_SLOT_BYTES },
    };
    this.markDirty(offset);
    return slot;
  }

  /** Marks a slot as changed; the next flush uploads it. */
  markDirty(offset: number): void {
    this.dirtyLo = Math.min(this.dirtyLo, offset);
    this.dirtyHi = Math.max(this.dirtyHi, offset + ARENA_SLOT_BYTES);
  }

  /** Uploads every slot changed since the last flush, in one writeBuffer. */
  flush(): void {
    if (this.dirtyHi <= this.dirtyLo) return;
    this.device.queue.writeBuffer(this.buffer, this.dirtyLo, this.mirror, this.dirtyLo, this.dirtyHi - this.dirtyLo);
    this.dirtyLo = Infinity;
    this.dirtyHi = 0;
  }
}

/**
 * Writes params into a slot, in declaration order, as u32/i32/f32 words (WGSL struct members of
 * scalar type are 4 bytes each, with no padding between scalars).
 */
export function writeParams(arena: UniformArena, slot: ArenaSlot, words: readonly ParamWord[]): void {
  for (let i = 0; i < words.length; i++) {
    const w = words[i];
    if (typeof w === 'number') slot.u32[i] = w >>> 0;
    else if (w.f32 !== undefined) slot.f32[i] = w.f32;
    else slot.i32[i] = w.i32!;
  }
  arena.markDirty(slot.offset);
}

/** A u32 (plain number), an f32 (`{f32}`) or an i32 (`{i32}`) param word. */
export type ParamWord = number | { f32: number; i32?: undefined } | { i32: number; f32?: undefined };
