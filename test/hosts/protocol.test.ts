// The Worker protocol version, checked by both ends at connect: a ChunklmClient that reaches a
// Worker of another chunklm build gets WorkerError 'protocol-mismatch' naming both versions, and
// so does a caller of the Worker's handshake that speaks another version.
import { expose } from 'comlink';
import { afterEach, describe, expect, it } from 'vitest';
import { ChunklmClient, PROTOCOL_VERSION, WorkerError } from '../../src/api.ts';
import { ChunklmWorkerService, protocolMismatch } from '../../src/worker/api.ts';
import { installErrorTransfer } from '../../src/worker/comlink-errors.ts';

installErrorTransfer();

const ports: MessagePort[] = [];
afterEach(() => {
  for (const p of ports.splice(0)) p.close();
});

/** A client's endpoint whose other end exposes `worker`. */
function endpointTo(worker: object): MessagePort {
  const { port1, port2 } = new MessageChannel();
  expose(worker, port2);
  ports.push(port1, port2);
  return port1;
}

async function mismatchOf(worker: object): Promise<WorkerError> {
  const err = await ChunklmClient.create({ worker: endpointTo(worker) }).then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(err).toBeInstanceOf(WorkerError);
  expect((err as WorkerError).code).toBe('protocol-mismatch');
  return err as WorkerError;
}

describe('the Worker protocol version', () => {
  it('connects a client to a Worker of the same version', async () => {
    const service = new ChunklmWorkerService({ openEngine: () => Promise.reject(new Error('no engine in this test')) });
    const client = await ChunklmClient.create({ worker: endpointTo(service) });
    client.dispose();
    expect(service.handshake(PROTOCOL_VERSION)).toBe(PROTOCOL_VERSION);
  });

  it('the Worker refuses a client of another version, naming both', () => {
    const service = new ChunklmWorkerService({ openEngine: () => Promise.reject(new Error('unused')) });
    let err: unknown;
    try {
      service.handshake(PROTOCOL_VERSION - 1);
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(WorkerError);
    expect((err as WorkerError).fields).toEqual({ worker: PROTOCOL_VERSION, client: PROTOCOL_VERSION - 1 });
    expect((err as WorkerError).message).toMatch(/different chunklm builds/);
  });

  it('a client reaching a newer Worker gets protocol-mismatch with both versions', async () => {
    const err = await mismatchOf({ ping: () => PROTOCOL_VERSION + 1, handshake: () => PROTOCOL_VERSION + 1 });
    expect(err.fields).toEqual({ worker: PROTOCOL_VERSION + 1, client: PROTOCOL_VERSION });
  });

  it("a Worker's refusal reaches the client as the Worker's WorkerError", async () => {
    // As a Worker of version N+1 answers a client of version N.
    const err = await mismatchOf({
      ping: () => PROTOCOL_VERSION + 1,
      handshake: (client: number) => {
        throw protocolMismatch(PROTOCOL_VERSION + 1, client);
      },
    });
    expect(err.fields).toEqual({ worker: PROTOCOL_VERSION + 1, client: PROTOCOL_VERSION });
  });

  it('a client reaching a Worker older than the handshake (protocol 3: ping only) gets protocol-mismatch', async () => {
    const err = await mismatchOf({ ping: () => 3 });
    expect(err.fields).toEqual({ worker: 3, client: PROTOCOL_VERSION });
    expect(err.message).toMatch(/protocol 3 .* speaks 4/);
  });
});
