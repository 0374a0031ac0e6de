// Frames written while one read chunk is handled go out together: each socket written to is corked
// on its first write of the chunk and uncorked when the chunk is done, so a chunk of N requests
// costs one write per upstream connection (and a chunk of N replies one per local connection)
// instead of N.

export interface Corkable {
  cork(): void;
  uncork(): void;
  write(frame: Buffer): boolean;
}

export class Corks {
  private open = false;
  private readonly corked = new Set<Corkable>();

  /** Runs `fn` (a decoder push) with writes corked; nested runs join the outer one. */
  run(fn: () => void): void {
    if (this.open) {
      fn();
      return;
    }
    this.open = true;
    try {
      fn();
    } finally {
      this.open = false;
      for (const s of this.corked) s.uncork();
      this.corked.clear();
    }
  }

  /** Writes `frame` to `to`, corked when inside run(); false past the high-water mark. */
  write(to: Corkable, frame: Buffer): boolean {
    if (this.open && !this.corked.has(to)) {
      to.cork();
      this.corked.add(to);
    }
    return to.write(frame);
  }
}
