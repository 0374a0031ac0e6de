// The same echo handler in plain JavaScript.
export default async function tcpmain(socket) {
  for await (const chunk of socket) socket.write(chunk);
}
