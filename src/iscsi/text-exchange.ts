/**
 * Text Request/Response exchanges in full feature phase (RFC 7143 §6.5, §11.10-11.11):
 * SendTargets discovery (§12.3 / Appendix C) and renegotiation of the few keys allowed after
 * login. Handles continuation both ways: initiator text split with the C bit, and responses
 * longer than the initiator's MaxRecvDataSegmentLength split across Text Responses that the
 * initiator pulls with empty requests carrying our Target Transfer Tag.
 */
import { RESERVED_TAG } from '../pdu/opcodes';
import { TextRequestPdu } from '../pdu/requests';
import { TextFormatError, TextPair, encodeText, parseText } from '../pdu/text';
import { Negotiator } from './negotiation';
import { PortalAddress } from '../transport/portal';
import { IscsiTargetNode, TargetCatalog, formatPortal } from './target-node';

/** One Text Response PDU to send. */
export interface TextReply {
  readonly final: boolean;
  readonly continue: boolean;
  readonly ttt: number;
  readonly data: Buffer;
}

export class TextExchangeError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'TextExchangeError';
  }
}

export interface TextContext {
  readonly catalog: TargetCatalog;
  readonly sessionType: 'Normal' | 'Discovery';
  readonly initiatorName: string;
  /** The target of a normal session. */
  readonly target: IscsiTargetNode | undefined;
  readonly local: PortalAddress;
  readonly negotiator: Negotiator;
  /** The initiator's current MaxRecvDataSegmentLength (limits each response PDU). */
  maxXmit(): number;
}

/** SendTargets answer (RFC 7143 Appendix C): TargetName followed by its TargetAddress keys. */
export function sendTargets(value: string, ctx: TextContext): TextPair[] {
  let targets: readonly IscsiTargetNode[];
  if (value === 'All') {
    targets = ctx.sessionType === 'Discovery' ? ctx.catalog.list() : ctx.target ? [ctx.target] : [];
  } else if (value === '') {
    targets = ctx.target ? [ctx.target] : [];
  } else {
    const t = ctx.catalog.find(value);
    targets = t ? [t] : [];
  }
  const pairs: TextPair[] = [];
  for (const t of targets) {
    if (!t.allows(ctx.initiatorName)) continue;
    pairs.push(['TargetName', t.name]);
    for (const p of ctx.catalog.portalsFor(t, ctx.local)) pairs.push(['TargetAddress', formatPortal(p, p.tpgt ?? t.portalGroupTag)]);
  }
  return pairs;
}

export class TextExchange {
  private itt = RESERVED_TAG;
  private incoming: Buffer[] = [];
  private outgoing: Buffer | undefined;
  private outgoingOffset = 0;
  private ttt = RESERVED_TAG;
  private nextTtt = 1;

  constructor(private readonly ctx: TextContext) {}

  /** Handle one Text Request (already ordered by CmdSN). Throws TextExchangeError on misuse. */
  handle(pdu: TextRequestPdu): TextReply {
    if (pdu.ttt !== RESERVED_TAG) {
      // Continuation of our long response.
      if (pdu.itt !== this.itt || pdu.ttt !== this.ttt || !this.outgoing) {
        throw new TextExchangeError('Text Request with an unknown Target Transfer Tag');
      }
      return this.nextPart();
    }
    if (pdu.itt !== this.itt) {
      // A new exchange resets whatever was pending (RFC 7143 §11.10.2).
      this.itt = pdu.itt;
      this.incoming = [];
      this.outgoing = undefined;
    }
    this.incoming.push(pdu.data);
    if (pdu.continue) {
      if (this.incoming.reduce((n, b) => n + b.length, 0) > 65536) throw new TextExchangeError('text request too long');
      this.ttt = this.allocateTtt();
      return { final: false, continue: false, ttt: this.ttt, data: Buffer.alloc(0) };
    }
    const text = Buffer.concat(this.incoming);
    this.incoming = [];
    let pairs: TextPair[];
    try {
      pairs = parseText(text);
    } catch (e) {
      throw new TextExchangeError((e as TextFormatError).message);
    }
    const response: TextPair[] = [];
    const rest: TextPair[] = [];
    for (const pair of pairs) {
      if (pair[0] === 'SendTargets') response.push(...sendTargets(pair[1], this.ctx));
      else rest.push(pair);
    }
    if (rest.length > 0) response.push(...this.ctx.negotiator.respond(rest, false));
    this.outgoing = encodeText(response);
    this.outgoingOffset = 0;
    return this.nextPart();
  }

  private nextPart(): TextReply {
    const data = this.outgoing!;
    const n = Math.min(this.ctx.maxXmit(), data.length - this.outgoingOffset);
    const part = data.subarray(this.outgoingOffset, this.outgoingOffset + n);
    this.outgoingOffset += n;
    if (this.outgoingOffset < data.length) {
      this.ttt = this.allocateTtt();
      return { final: false, continue: true, ttt: this.ttt, data: part };
    }
    this.outgoing = undefined;
    this.ttt = RESERVED_TAG;
    this.itt = RESERVED_TAG;
    return { final: true, continue: false, ttt: RESERVED_TAG, data: part };
  }

  private allocateTtt(): number {
    const t = this.nextTtt;
    this.nextTtt = (this.nextTtt % 0x7fffffff) + 1;
    return t;
  }
}
