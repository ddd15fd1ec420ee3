// A chat engine with a wallet over the in-memory adapters, for the wallet service tests.
import { MemoryChatStore } from '../../storage/memory/chat-store.ts';
import { MemoryGrabDecider } from '../../storage/memory/grab-decider.ts';
import { MemoryWalletStore } from '../../storage/memory/wallet-store.ts';
import type { EngineSettings } from '../api.ts';
import { harness, type Harness } from '../test/harness.ts';
import type { GrabDecider, WalletStore } from './ports.ts';

export interface WalletHarness extends Harness {
  wallet: WalletStore;
  decider: GrabDecider;
  topup(user: string, amount: number, key?: string): Promise<void>;
  cents(user: string): Promise<number>;
}

let keys = 0;

export function walletHarness(
  settings: Partial<EngineSettings> = {}, decider: GrabDecider = new MemoryGrabDecider(), more: { store?: MemoryChatStore; ownsConversation?: (conv: string) => boolean } = {},
): WalletHarness {
  const wallet = new MemoryWalletStore();
  // One event per grab unless a test asks for coalescing: the assertions read events right after grabs.
  const h = harness({ envelopeEventCoalesceMs: 0, ...settings }, more.store ?? new MemoryChatStore(), {
    wallet: { store: wallet, decider }, ...(more.ownsConversation ? { ownsConversation: more.ownsConversation } : {}),
  });
  return {
    ...h, wallet, decider,
    async topup(user, amount, key = `k${++keys}`) { await h.engine.admin!('wallet.topup', { user, amount, key }); },
    async cents(user) {
      const { balances } = await h.as(user).req('wallet.balance', {});
      return balances[0]!.cents;
    },
  };
}

/** A group owned by `owner` with `members` (besides the owner). */
export async function group(h: Harness, owner: string, members: string[]): Promise<string> {
  return (await h.as(owner).req('group.create', { title: 'lucky', members })).conv;
}
