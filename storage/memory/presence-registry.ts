// In-process PresenceRegistry for embedded mode: user -> the sessions connected right now.
// add/remove report transitions (first device in, last device out), so a repeated add or a
// remove of an unknown session never announces presence twice.
import type { PresenceRegistry } from '../../engine/ports.ts';

export class MemoryPresenceRegistry implements PresenceRegistry {
  private readonly sessions = new Map<string, Set<string>>();

  async add(user: string, session: string): Promise<boolean> {
    const current = this.sessions.get(user);
    if (current) {
      current.add(session);
      return false;
    }
    this.sessions.set(user, new Set([session]));
    return true;
  }

  async remove(user: string, session: string): Promise<boolean> {
    const current = this.sessions.get(user);
    if (!current || !current.delete(session)) return false;
    if (current.size > 0) return false;
    this.sessions.delete(user);
    return true;
  }

  async refresh(sessions: ReadonlyArray<{ user: string; session: string }>): Promise<string[]> {
    const revived: string[] = [];
    for (const { user, session } of sessions) if (await this.add(user, session)) revived.push(user);
    return revived;
  }

  async online(users: readonly string[]): Promise<Set<string>> {
    const result = new Set<string>();
    for (const user of users) if (this.sessions.has(user)) result.add(user);
    return result;
  }
}
