import { RejectReason } from './opcodes';

/**
 * A PDU that cannot be accepted. `fatal` means framing can no longer be trusted (header digest
 * error, absurd lengths): the connection must be dropped. Otherwise the PDU is answered with a
 * Reject carrying `reason` and the stream continues.
 */
export class PduError extends Error {
  constructor(
    message: string,
    readonly reason: RejectReason,
    readonly fatal: boolean,
    /** The offending BHS (copied), for the Reject PDU's data segment. */
    readonly bhs?: Buffer,
  ) {
    super(message);
    this.name = 'PduError';
  }
}
