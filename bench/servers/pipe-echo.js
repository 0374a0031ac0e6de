// node's plain benchmark servers echo with socket.pipe(socket); this is that echo as a tcpdaemon
// handler, so a row of tcpdaemon with it against node's pipe server runs the same code per message
// on both sides and the ratio is the platform's alone. (examples/echo.js, the for-await loop, is
// measured against node's server running that loop, and against pipe.)
export default function tcpmain(socket) {
  socket.pipe(socket);
}
