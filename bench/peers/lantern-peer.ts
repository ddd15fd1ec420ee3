// Lantern behind the peers' client shape (peer-client.ts), so the peer scenarios drive it exactly
// as they drive raw uWS, Socket.IO and Centrifugo. Built on the load generator's minimal protocol
// client (loadgen/lantern-client.ts): hello with a token, requests for setup, fire-and-forget sends.
//
// How the generic operations map onto Lantern:
// - 1:1: Lantern only lets contacts talk, so a pair is set up first with LanternPeer.befriend()
//   (contact request + accept, then conv.direct on both sides); sendDirect() is then a `send` to
//   that direct conversation. The sender's own copy of a 1:1 message (Lantern echoes it to the
//   sender's devices) is not a delivery: on the other peers it does not reach the sender at all.
// - Groups: Lantern has no self-join: a member is added by an owner or admin. join() goes through
//   a LanternGroups shared by the clients of one process: the first client to join a group becomes
//   its owner, creates it with the next joiners and adds the later ones in batches (one group.create
//   or group.add per batch, not one per member). join()
//   resolves once the notice that created or added the client reached it, i.e. once Lantern
//   delivers the group's messages to this connection (in the distributed mode: once its gateway
//   listens to the group). Every member of a group must join through the same LanternGroups.
// - publish() is a text `send` to the group; every member gets it as a `msg` event, the sender
//   included, like a publish on the other peers.
// The payload travels as the message text, one latin1 character per byte (the stamp is ASCII).
import { DEFAULT_ENGINE_SETTINGS } from '../../engine/api.ts';
import type { Message, RequestParams, RequestResult, RequestType } from '../../protocol/frames.ts';
import { LanternConnection, withTimeout } from '../loadgen/lantern-client.ts';
import { textSendFrame } from '../loadgen/payload.ts';
import { closeSockets } from '../loadgen/socket.ts';
import type { PeerClient, PeerDelivery } from './peer-client.ts';

const DEVICE = 'bench';
const JOIN_TIMEOUT_MS = 10_000;
/** Users per group.add: the engine's default maxUsersPerCall, so any server settings accept it. */
const USERS_PER_ADD = DEFAULT_ENGINE_SETTINGS.maxUsersPerCall;
/** Lantern's default title limit; a group's name is its title. */
const MAX_TITLE = DEFAULT_ENGINE_SETTINGS.maxTitleLength;

interface Joiner { peer: LanternPeer; resolve(conv: string): void; reject(err: Error): void }
interface GroupEntry {
  title: string;
  owner: LanternPeer;
  /** The group's conversation once created; the owner's join waits on it. */
  conv: string | undefined;
  created: { resolve(conv: string): void; reject(err: Error): void };
  failed: Error | undefined;
  waiting: Joiner[];
  adding: boolean;
}

/**
 * The groups of one process: who created each one (and adds the others), and its conversation id.
 * Lantern creates a group with at least one member besides its owner, so the first client to join
 * a group becomes its owner and creates it together with the next joiners: the owner's join
 * resolves once a second client joins (joins must run concurrently, as the scenarios' do).
 */
export class LanternGroups {
  private readonly groups = new Map<string, GroupEntry>();

  /** Resolves with the conversation of `group` once `peer` is a member (its owner, or added by it). */
  enter(peer: LanternPeer, group: string): Promise<string> {
    const entry = this.groups.get(group);
    if (entry === undefined) {
      return new Promise((resolve, reject) => {
        this.groups.set(group, {
          title: group.slice(0, MAX_TITLE), owner: peer, conv: undefined, created: { resolve, reject }, failed: undefined, waiting: [], adding: false,
        });
      });
    }
    if (entry.failed) return Promise.reject(entry.failed);
    return new Promise((resolve, reject) => {
      entry.waiting.push({ peer, resolve, reject });
      void this.addWaiting(entry);
    });
  }

  /**
   * One loop per group: the first batch of joiners is named in group.create, later ones in
   * group.add; joiners arriving while a request is in flight go in the next batch.
   */
  private async addWaiting(entry: GroupEntry): Promise<void> {
    if (entry.adding) return;
    entry.adding = true;
    try {
      // Joins started together (one tick) go in one request.
      await new Promise((resolve) => setImmediate(resolve));
      while (entry.waiting.length > 0 && entry.failed === undefined) {
        const batch = entry.waiting.splice(0, USERS_PER_ADD);
        const users = batch.map((j) => j.peer.user);
        try {
          if (entry.conv === undefined) {
            const info = await entry.owner.request('group.create', { title: entry.title, members: users });
            entry.conv = info.conv;
            entry.created.resolve(info.conv);
          } else {
            await entry.owner.request('group.add', { conv: entry.conv, users });
          }
          for (const j of batch) j.resolve(entry.conv);
        } catch (err) {
          for (const j of batch) j.reject(err as Error);
          if (entry.conv === undefined) {
            // Without the group nobody can join: fail the owner and everyone waiting, now and later.
            entry.failed = new Error(`creating group ${entry.title} failed: ${(err as Error).message}`, { cause: err });
            entry.created.reject(entry.failed);
            for (const j of entry.waiting.splice(0)) j.reject(entry.failed);
          }
        }
      }
    } finally {
      entry.adding = false;
    }
  }
}

export class LanternPeer implements PeerClient {
  onDelivery: (delivery: PeerDelivery) => void = () => {};
  onError: (description: string) => void = () => {};
  /** Conversation -> the group it is, or null for a direct conversation. */
  private readonly convs = new Map<string, string | null>();
  private readonly directConvOf = new Map<string, string>();
  private readonly groupConvOf = new Map<string, string>();
  /** Conversations any message of has reached this client, and joins waiting for their first one. */
  private readonly seen = new Set<string>();
  private readonly firstMessage = new Map<string, () => void>();
  private readonly cidPrefix: string;

  private constructor(readonly conn: LanternConnection, private readonly groups: LanternGroups) {
    this.cidPrefix = `${conn.user}-`;
    conn.onFrame = (frame) => this.receive(frame);
    conn.onClose = (description) => this.onError(description);
  }

  get user(): string {
    return this.conn.user;
  }

  /** Connects and says hello with `token` (an HS256 JWT for `user`, loadgen/lantern-client.ts mintToken). */
  static async open(url: string, token: string, user: string, groups: LanternGroups, timeoutMs: number): Promise<LanternPeer> {
    return new LanternPeer(await LanternConnection.open(url, token, user, DEVICE, timeoutMs), groups);
  }

  /** Makes `a` and `b` contacts and opens their direct conversation, so each can sendDirect() to the other. */
  static async befriend(a: LanternPeer, b: LanternPeer): Promise<void> {
    await a.request('contact.request', { user: b.user });
    await b.request('contact.accept', { user: a.user });
    const [fromA, fromB] = await Promise.all([a.request('conv.direct', { user: b.user }), b.request('conv.direct', { user: a.user })]);
    if (fromA.conv !== fromB.conv) throw new Error(`conv.direct disagrees for ${a.user}/${b.user}: ${fromA.conv} vs ${fromB.conv}`);
    a.knowDirect(b.user, fromA.conv);
    b.knowDirect(a.user, fromB.conv);
  }

  /** A setup request on this connection (`unavailable` is retried, see LanternConnection.request). */
  request<T extends RequestType>(type: T, params: RequestParams<T>): Promise<RequestResult<T>> {
    return this.conn.request(type, params);
  }

  async join(group: string, timeoutMs = JOIN_TIMEOUT_MS): Promise<void> {
    await withTimeout((async () => {
      const conv = await this.groups.enter(this, group);
      this.convs.set(conv, group);
      this.groupConvOf.set(group, conv);
      if (this.seen.has(conv)) return;
      await new Promise<void>((resolve) => this.firstMessage.set(conv, resolve));
    })(), timeoutMs, `${this.user} joining ${group}`);
  }

  sendDirect(to: string, payload: Uint8Array): void {
    const conv = this.directConvOf.get(to);
    if (conv === undefined) this.onError(`${this.user}: no direct conversation with ${to} (LanternPeer.befriend first)`);
    else this.send(conv, payload);
  }

  publish(group: string, payload: Uint8Array): void {
    const conv = this.groupConvOf.get(group);
    if (conv === undefined) this.onError(`${this.user}: publish to ${group} before joining it`);
    else this.send(conv, payload);
  }

  bufferedAmount(): number {
    return this.conn.ws.bufferedAmount;
  }

  async close(): Promise<void> {
    this.conn.markClosing();
    await closeSockets([this.conn.ws]);
  }

  private knowDirect(peer: string, conv: string): void {
    this.convs.set(conv, null);
    this.directConvOf.set(peer, conv);
  }

  private send(conv: string, payload: Uint8Array): void {
    const text = Buffer.from(payload.buffer, payload.byteOffset, payload.byteLength).toString('latin1');
    const cidPrefix = this.cidPrefix;
    this.conn.fire((id) => textSendFrame(id, conv, cidPrefix + id, text));
  }

  private receive(frame: Record<string, unknown>): void {
    switch (frame['t']) {
      case 'msg': {
        const m = frame['m'] as Message;
        if (!this.seen.has(m.conv)) {
          this.seen.add(m.conv);
          const resolve = this.firstMessage.get(m.conv);
          this.firstMessage.delete(m.conv);
          resolve?.();
        }
        if (m.kind !== 'text') return; // notices (created, joined) are not messages of the load
        const group = this.convs.get(m.conv);
        const text = (m.body as { text?: unknown } | undefined)?.text;
        if (group === undefined || typeof text !== 'string') {
          this.onError(`${this.user}: unexpected msg in ${m.conv} from ${m.from}`);
          return;
        }
        if (group === null && m.from === this.user) return; // our own 1:1 message echoed to our device
        this.onDelivery({ from: m.from, group, payload: Buffer.from(text, 'latin1') });
        return;
      }
      case 'err':
        // Setup requests are answered through request(); an err here refuses a fired send.
        this.onError(`${this.user}: ${String(frame['error'])} (${String(frame['code'])}) ${String(frame['msg'])}`);
        return;
      case 'lag':
        this.onError(`${this.user}: lag (server dropped events for this connection)`);
        return;
      default:
        return; // res of sends, receipts, presence, contact events
    }
  }
}
