/**
 * Logging: a thin wrapper over pino so every unit receives a {@link Logger} and tests can
 * pass {@link silentLogger}. Hot paths should not log per packet; use counters instead.
 */
import { pino, type Logger as PinoLogger } from 'pino';

export type Logger = PinoLogger;

/** Creates the process logger. `level` is a pino level name (`info`, `debug`, ...). */
export function createLogger(level = process.env.SIPEDGE_LOG_LEVEL ?? 'info'): Logger {
  return pino({ level, base: { name: 'sipedge' } });
}

/** A logger that discards everything (for unit tests). */
export const silentLogger: Logger = pino({ level: 'silent' });
