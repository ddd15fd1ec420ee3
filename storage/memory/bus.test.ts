import t from 'tap';
import { busContract } from '../contract/bus.contract.ts';
import { InProcessBus } from './bus.ts';

busContract(t, 'in-process bus', async () => {
  const bus = new InProcessBus();
  return { a: bus, b: bus, cleanup: () => bus.close() };
});
