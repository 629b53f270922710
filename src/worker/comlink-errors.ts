// Comlink's built-in 'throw' handler keeps only message/name/stack and rebuilds a plain Error,
// so `err instanceof GGUFError` and `err.code` would die at the Worker boundary. This replaces
// it with one that sends serializeError's plain object and rebuilds the ChunklmError subclass.
// Both sides must install it: the Worker serializes what it throws, the page deserializes it
// (and the reverse for errors thrown by proxied callbacks such as onToken).
import { transferHandlers, type TransferHandler } from 'comlink';
import { deserializeError, serializeError, type SerializedError } from '../errors.ts';

let installed = false;

export function installErrorTransfer(): void {
  if (installed) return;
  const builtin = transferHandlers.get('throw');
  if (!builtin) throw new Error("comlink has no 'throw' transfer handler; is the comlink version supported?");
  const handler: TransferHandler<{ value: unknown }, SerializedError> = {
    // Comlink marks thrown values with a private symbol; its own check is the only way to see it.
    canHandle: (v): v is { value: unknown } => builtin.canHandle(v),
    serialize: ({ value }) => [serializeError(value), []],
    deserialize: (s) => {
      throw deserializeError(s);
    },
  };
  transferHandlers.set('throw', handler as TransferHandler<unknown, unknown>);
  installed = true;
}
