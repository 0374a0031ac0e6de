export const USAGE = `usage: tcpdaemon -m IOMP|LF|IF|TLF -l ADDRESS -s HANDLER [options]
       tcpdaemon gateway -l ADDRESS -s BUSINESS --workers N [options]   (tcpdaemon gateway -h)
       tcpdaemon worker -s BUSINESS --queue nats://HOST:PORT [options]   (tcpdaemon worker -h)
       tcpdaemon proxy -l ADDRESS --backend HOST:PORT|--spawn CMD [options] (tcpdaemon proxy -h)
       tcpdaemon bench --port PORT [options]                            (load tool; tcpdaemon bench -h)
       tcpdaemon status SOCKET [--json]                                 (a daemon run with --status-socket SOCKET)

  -m MODEL               IOMP (alias IO), LF, IF, TLF (alias WIN-TLF); default IOMP
  -l ADDRESS             ip:port, 0:port (all IPv4), [ipv6]:port, or a unix socket path
  -s HANDLER             handler module: .js .mjs .cjs .ts .mts .cts
  -c N                   workers: processes (IOMP, LF, IF) or threads (TLF); default 1
  -n N                   recycle a worker after N connections (0 = never)
  --timeout SECONDS      idle timeout per connection (fractions allowed; 0 = none)
  --proxy-protocol       connections start with a PROXY v1/v2 header (HAProxy, nginx, cloud balancers):
                         env.remoteAddress/remotePort show the real client; no valid header = closed
  --proxy-header-timeout S  the PROXY header must arrive within S seconds (default 5)
  --max-connections N    close connections above N at once, counted in the log (0 = no limit)
  --shutdown-timeout S   on SIGTERM/SIGINT, seconds connections get to finish (default 10)
  --hang-timeout S       replace a worker whose event loop is blocked longer than S seconds (0 = never)
  --max-memory MB        recycle a worker whose resident memory exceeds MB (0 = never)
  --restart-delay S      first restart delay of a crashed worker, doubling per crash (default 0.1)
  --restart-delay-max S  cap of the restart delay (default 10)
  --spares K             IF: processes started ahead to take the next connections (default min(N, 2))
  --max-waiting Q        (alias --queue Q) LF, IF: connections that may wait for a free worker (default 1024, IF 64); more are closed
  --reuse-port           IOMP -c N, TLF: one SO_REUSEPORT socket per worker, the kernel spreads connections
                         (needs Node.js >= 22.12; TCP only)
  --tcp-nodelay          disable Nagle's algorithm on accepted sockets
  --tcp-linger N         0: close with RST; N: after our FIN, RST if the peer has not closed in N s
  --param KEY=VALUE      handed to the handler as env.params (repeatable)
  --logfile PATH         JSON log lines go here instead of stdout (SIGUSR1 reopens it)
  --loglevel LEVEL       debug, info, warn, error, fatal (also --loglevel-LEVEL); default info
  --work-path DIR        change to DIR after paths on the command line are resolved
  --daemon-level         detach from the terminal (needs --logfile)
  --pid-file PATH        write the daemon's pid here once listening
  --status-socket PATH   answer \`tcpdaemon status PATH\` on this unix socket (mode 0600)
  --config FILE.json     parameters as JSON (library keys); flags override it
  -v                     print the version
  -h, --help             print this help

signals: SIGTERM/SIGINT stop gracefully (a second one forces), SIGUSR1 reopens the log file,
         SIGHUP reloads the workers of IOMP -c N, LF and TLF one by one, and IF's spares
         (new handler code, no connection refused)`;
