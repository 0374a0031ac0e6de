import type { Logger } from './types.js';

/**
 * Counts an event that can come in floods (dropped connections) and logs it at most once
 * per `intervalMs`: the first occurrence at once, then one summary per interval.
 */
export class ThrottledCount {
  total = 0;
  private pending = 0;
  private timer: NodeJS.Timeout | undefined;

  constructor(
    private readonly logger: Logger,
    private readonly msg: string,
    private readonly intervalMs = 1000,
  ) {}

  add(fields: Record<string, unknown> = {}): void {
    this.total++;
    if (this.timer) {
      this.pending++;
      return;
    }
    this.logger.warn({ ...fields, count: 1, total: this.total }, this.msg);
    this.timer = setTimeout(() => this.flush(), this.intervalMs);
    this.timer.unref();
  }

  private flush(): void {
    this.timer = undefined;
    if (this.pending === 0) return;
    this.logger.warn({ count: this.pending, total: this.total, intervalMs: this.intervalMs }, this.msg);
    this.pending = 0;
    this.timer = setTimeout(() => this.flush(), this.intervalMs);
    this.timer.unref();
  }
}
