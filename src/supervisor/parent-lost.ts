// A child learns that its parent is gone from the IPC channel's 'disconnect'. Node does not emit
// it when the parent dies while a handle this child sent still awaits its acknowledgement:
// child_process defers the disconnect until that ack, which never comes, though the channel is
// closed by then and process.connected is false. A child with a listening socket then lives on.
// So the loss is also noticed by looking at process.connected now and then.

/** Calls `lost` once, when this process's IPC channel to its parent is gone. */
export function onParentLost(lost: () => void, pollMs: number): void {
  let fired = false;
  const fire = () => {
    if (fired) return;
    fired = true;
    clearInterval(poll);
    lost();
  };
  const poll = setInterval(() => {
    if (!process.connected) fire();
  }, pollMs);
  poll.unref();
  process.once('disconnect', fire);
}
