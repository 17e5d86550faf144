import { MemoryLocationStore } from '../../src/store/memory.js';
import { locationStoreContract } from './contract.js';

locationStoreContract('MemoryLocationStore', { open: async () => new MemoryLocationStore() });
