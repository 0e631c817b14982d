// raw_echo.cpp: plain TCP echo server, one thread, epoll (a benchmark tool, not a test).
//
//   raw_echo --port N [--host 127.0.0.1]
//
// Echoes every byte back. With `loadgen --raw` it carries the same bytes as a WebSocket echo,
// with no protocol work at all: the physical limit of the machine for that traffic. Like the
// WebSocket servers, it reads up to 64 KiB at a time and stops reading a connection whose
// echo the peer does not take (backpressure) until it drains.
#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

namespace {

struct Conn {
  int fd = -1;
  std::vector<char> out;  // bytes read and not yet echoed
  std::size_t head = 0;
};

volatile std::sig_atomic_t stop = 0;
extern "C" void on_signal(int) { stop = 1; }

}  // namespace

int main(int argc, char** argv) {
  std::string host = "127.0.0.1";
  int port = -1;
  for (int i = 1; i + 1 < argc; i += 2) {
    if (std::strcmp(argv[i], "--port") == 0) port = std::atoi(argv[i + 1]);
    else if (std::strcmp(argv[i], "--host") == 0) host = argv[i + 1];
  }
  if (port < 0 || argc % 2 == 0) {
    std::fprintf(stderr, "usage: %s --port N [--host H]\n", argv[0]);
    return 2;
  }
  rlimit rl;
  if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
    rl.rlim_cur = rl.rlim_max;
    setrlimit(RLIMIT_NOFILE, &rl);
  }
  std::signal(SIGINT, on_signal);
  std::signal(SIGTERM, on_signal);
  std::signal(SIGPIPE, SIG_IGN);

  int ls = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  int one = 1;
  setsockopt(ls, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_port = htons(static_cast<std::uint16_t>(port));
  if (inet_pton(AF_INET, host.c_str(), &a.sin_addr) != 1 || bind(ls, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0 ||
      listen(ls, SOMAXCONN) != 0) {
    std::perror("raw_echo: listen");
    return 1;
  }
  int ep = epoll_create1(EPOLL_CLOEXEC);
  epoll_event ev{};
  ev.events = EPOLLIN;
  ev.data.fd = ls;
  epoll_ctl(ep, EPOLL_CTL_ADD, ls, &ev);
  std::vector<Conn> conns;  // indexed by fd
  std::vector<char> buf(64 * 1024);
  std::printf("raw_echo listening on %s:%d\n", host.c_str(), port);
  std::fflush(stdout);

  auto drop = [&](Conn& c) {
    epoll_ctl(ep, EPOLL_CTL_DEL, c.fd, nullptr);
    close(c.fd);
    c = Conn{};
  };
  // Writes what is pending; returns false when the connection is gone.
  auto flush = [&](Conn& c) {
    while (c.head < c.out.size()) {
      ssize_t n = send(c.fd, c.out.data() + c.head, c.out.size() - c.head, MSG_NOSIGNAL);
      if (n < 0 && errno == EINTR) continue;
      if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) break;
      if (n < 0) return false;
      c.head += static_cast<std::size_t>(n);
    }
    bool pending = c.head < c.out.size();
    if (!pending) c.out.clear(), c.head = 0;
    epoll_event e{};
    e.events = pending ? EPOLLOUT : EPOLLIN;  // backpressure: stop reading until it drains
    e.data.fd = c.fd;
    epoll_ctl(ep, EPOLL_CTL_MOD, c.fd, &e);
    return true;
  };

  epoll_event evs[256];
  while (!stop) {
    int n = epoll_wait(ep, evs, 256, 500);
    for (int i = 0; i < n; ++i) {
      int fd = evs[i].data.fd;
      if (fd == ls) {
        int s;
        while ((s = accept4(ls, nullptr, nullptr, SOCK_NONBLOCK | SOCK_CLOEXEC)) >= 0) {
          setsockopt(s, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
          if (conns.size() <= static_cast<std::size_t>(s)) conns.resize(static_cast<std::size_t>(s) + 1);
          conns[static_cast<std::size_t>(s)].fd = s;
          epoll_event e{};
          e.events = EPOLLIN;
          e.data.fd = s;
          epoll_ctl(ep, EPOLL_CTL_ADD, s, &e);
        }
        continue;
      }
      Conn& c = conns[static_cast<std::size_t>(fd)];
      if (c.fd < 0) continue;
      if (c.head < c.out.size()) {  // waiting for POLLOUT
        if (!flush(c)) drop(c);
        continue;
      }
      ssize_t r = recv(fd, buf.data(), buf.size(), 0);
      if (r < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR)) continue;
      if (r <= 0) {
        drop(c);
        continue;
      }
      ssize_t w = send(fd, buf.data(), static_cast<std::size_t>(r), MSG_NOSIGNAL);
      if (w < 0 && errno != EAGAIN && errno != EWOULDBLOCK) {
        drop(c);
        continue;
      }
      if (w < 0) w = 0;
      if (w < r) {
        c.out.assign(buf.data() + w, buf.data() + r);
        if (!flush(c)) drop(c);
      }
    }
  }
  return 0;
}
