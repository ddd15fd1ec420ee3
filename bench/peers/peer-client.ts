// The shape every peer's Node client has, so one scenario can drive any of them: a user who is
// reachable by name (1:1), joins groups, and publishes to a group (fan-out, the sender included
// when it is a member, as in a Lantern group).
export interface PeerDelivery {
  /** The sending user, as the server (or, for raw uWS, the sender's frame) names it. */
  from: string;
  /** The group the message was published to, or null for a 1:1 message. */
  group: string | null;
  payload: Buffer;
}

export interface PeerClient {
  readonly user: string;
  /** Every message that reaches this client, 1:1 or group. */
  onDelivery: (delivery: PeerDelivery) => void;
  /** A refused send or an unexpected close (the load generator counts these as errors). */
  onError: (description: string) => void;
  /** Resolves once publishes to `group` reach this client. */
  join(group: string): Promise<void>;
  /** Fire and forget: a 1:1 message to `to`. */
  sendDirect(to: string, payload: Uint8Array): void;
  /** Fire and forget: one message to every member of `group`. */
  publish(group: string, payload: Uint8Array): void;
  /** Bytes queued in the socket, not yet written (open-loop pacing skips a client above a bound). */
  bufferedAmount(): number;
  close(): Promise<void>;
}
