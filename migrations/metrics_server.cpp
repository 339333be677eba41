#include "migrations/metrics_server.h"

#include <httplib.h>
#include <netdb.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <condition_variable>
#include <cstring>
#include <mutex>
#include <thread>

#include <fmt/format.h>

#include "dynamo/aws_config.h"
#include "dynamo/errors.h"
#include "migrations/config.h"
#include "migrations/metrics.h"

namespace dynamorph::migrations::metrics {
namespace {

[[noreturn]] void refuse(const std::string& address, const std::string& why) {
  throw UsageError(fmt::format("--metrics ADDR: {}: {}", address, why));
}

// SO_REUSEADDR (a restarted run rebinds at once) but not httplib's default SO_REUSEPORT, which
// would let two processes listen on one port and split the scrapes between them.
void socket_options(int sock) {
  int yes = 1;
  ::setsockopt(sock, SOL_SOCKET, SO_REUSEADDR, &yes, sizeof yes);
}

// Why `host:port` cannot be bound, found by trying it with a socket of our own (httplib's bind
// says only that it failed).
std::string bind_failure(const ListenAddress& a) {
  addrinfo hints{};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  hints.ai_flags = AI_PASSIVE;
  addrinfo* found = nullptr;
  const std::string port = std::to_string(a.port);
  if (int rc = ::getaddrinfo(a.host.c_str(), port.c_str(), &hints, &found); rc != 0)
    return fmt::format("unknown host '{}' ({})", a.host, ::gai_strerror(rc));
  std::string why = "cannot listen there";
  for (addrinfo* ai = found; ai; ai = ai->ai_next) {
    int sock = ::socket(ai->ai_family, ai->ai_socktype, ai->ai_protocol);
    if (sock < 0) {
      why = std::strerror(errno);
      continue;
    }
    socket_options(sock);
    const bool bound = ::bind(sock, ai->ai_addr, ai->ai_addrlen) == 0;
    if (!bound) why = std::strerror(errno);
    ::close(sock);
    if (!bound) break;
  }
  ::freeaddrinfo(found);
  return why;
}

// Set by the /metrics handler for the logger, which httplib calls on the same thread once the
// response is written.
thread_local bool t_after_end = false;

}  // namespace

ListenAddress parse_listen_address(const std::string& text) {
  const auto colon = text.rfind(':');
  if (colon == std::string::npos)
    refuse(text, "expected HOST:PORT, e.g. 127.0.0.1:9464 (0.0.0.0:9464 for every interface)");
  ListenAddress a;
  a.host = text.substr(0, colon);
  const std::string port = text.substr(colon + 1);
  if (a.host.size() >= 2 && a.host.front() == '[' && a.host.back() == ']')
    a.host = a.host.substr(1, a.host.size() - 2);
  else if (a.host.find(':') != std::string::npos)
    refuse(text, "an IPv6 address goes in brackets, e.g. [::1]:9464");
  if (a.host.empty())
    refuse(text, "no host: give the interface, e.g. 127.0.0.1:9464 (0.0.0.0:9464 for every one)");
  if (port.empty() || port.size() > 5 || port.find_first_not_of("0123456789") != std::string::npos)
    refuse(text, fmt::format("port '{}' is not a number from 1 to 65535", port));
  a.port = std::stoi(port);
  if (a.port < 1 || a.port > 65535)
    refuse(text, fmt::format("port {} is not from 1 to 65535", a.port));
  return a;
}

struct MetricsServer::Impl {
  httplib::Server server;
  std::thread thread;
  std::mutex mu;
  std::condition_variable cv;
  std::atomic<bool> ended{false};
  int served_after_end = 0;  // under mu
  bool stopped = false;
};

MetricsServer::MetricsServer(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}

MetricsServer::~MetricsServer() { stop(); }

std::unique_ptr<MetricsServer> MetricsServer::start(const std::string& address,
                                                    const Registry& registry) {
  const ListenAddress a = parse_listen_address(address);
  auto impl = std::make_unique<Impl>();
  Impl* self = impl.get();
  httplib::Server& s = impl->server;
  // Two threads are plenty for a scraper or two. One request per connection and short
  // timeouts: stopping never waits on an idle keep-alive connection (the SIGTERM budget).
  s.new_task_queue = [] { return new httplib::ThreadPool(2); };
  s.set_socket_options(socket_options);
  s.set_keep_alive_max_count(1);
  s.set_read_timeout(1, 0);
  s.set_write_timeout(2, 0);
  s.Get("/metrics", [&registry, self](const httplib::Request&, httplib::Response& res) {
    t_after_end = self->ended.load();
    res.set_content(registry.exposition(), "text/plain; version=0.0.4; charset=utf-8");
  });
  s.set_logger([self](const httplib::Request& req, const httplib::Response&) {
    if (req.path != "/metrics" || !t_after_end) return;
    t_after_end = false;
    {
      std::lock_guard lock(self->mu);
      ++self->served_after_end;
    }
    self->cv.notify_all();
  });
  if (!s.bind_to_port(a.host, a.port)) refuse(address, bind_failure(a));
  impl->thread = std::thread([self] { self->server.listen_after_bind(); });
  // stop() before the loop runs would be lost: wait until it does.
  for (int i = 0; i < 2000 && !s.is_running(); ++i)
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  return std::unique_ptr<MetricsServer>(new MetricsServer(std::move(impl)));
}

bool MetricsServer::linger(std::chrono::milliseconds limit, const std::atomic<bool>* stop) {
  impl_->ended = true;
  const auto until = std::chrono::steady_clock::now() + limit;
  std::unique_lock lock(impl_->mu);
  while (impl_->served_after_end == 0 && !(stop && stop->load())) {
    const auto now = std::chrono::steady_clock::now();
    if (now >= until) break;
    // Short waits: a signal handler sets `stop` without notifying.
    impl_->cv.wait_for(lock, std::min<std::chrono::steady_clock::duration>(
                                 until - now, std::chrono::milliseconds(50)));
  }
  return impl_->served_after_end > 0;
}

void MetricsServer::stop() {
  if (!impl_ || impl_->stopped) return;
  impl_->stopped = true;
  impl_->server.stop();
  if (impl_->thread.joinable()) impl_->thread.join();
}

std::chrono::milliseconds linger_from_environment() {
  auto v = dynamo::system_getenv("DYNAMORPH_METRICS_LINGER");
  if (!v || v->empty()) return std::chrono::milliseconds(0);
  auto d = parse_duration(*v);
  if (!d)
    throw UsageError(
        fmt::format("DYNAMORPH_METRICS_LINGER: expected a duration like 30s or 2m, got '{}'", *v));
  return *d;
}

}  // namespace dynamorph::migrations::metrics
