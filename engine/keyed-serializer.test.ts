import t from 'tap';
import { KeyedSerializer } from './keyed-serializer.ts';

const tick = () => new Promise((resolve) => setImmediate(resolve));

t.test('one task at a time per key, in order; other keys run alongside; a failure does not block the queue', async (t) => {
  const s = new KeyedSerializer();
  const log: string[] = [];
  const task = (name: string, fail = false) => async () => {
    log.push(`${name} start`);
    await tick();
    log.push(`${name} end`);
    if (fail) throw new Error(name);
    return name;
  };
  const results = Promise.allSettled([s.run('a', task('a1', true)), s.run('a', task('a2')), s.run('b', task('b1'))]);
  t.equal(s.size, 2);
  const [a1, a2, b1] = await results;
  t.match(a1, { status: 'rejected', reason: { message: 'a1' } });
  t.match(a2, { status: 'fulfilled', value: 'a2' });
  t.match(b1, { status: 'fulfilled', value: 'b1' });
  t.ok(log.indexOf('a1 end') < log.indexOf('a2 start'), 'a2 waits for a1');
  t.ok(log.indexOf('b1 start') < log.indexOf('a1 end'), 'b1 does not wait for key a');
  await tick();
  t.equal(s.size, 0, 'idle keys are forgotten');
});
