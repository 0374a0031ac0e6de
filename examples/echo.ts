import type { Tcpmain } from 'tcpdaemon';

const tcpmain: Tcpmain = async (socket) => {
  for await (const chunk of socket) socket.write(chunk);
};
export default tcpmain;
