// Message-layer frames of this process, as plain integers (the metrics read them; one increment
// per frame is all they cost, with or without --metrics).
export const frameCounts = {
  /** Frames decoded from peers. */
  received: 0,
  /** Frames encoded and handed to a socket (or a batch). */
  sent: 0,
  /** Protocol errors (bad or oversized frames), each closing its connection. */
  decodeErrors: 0,
};
