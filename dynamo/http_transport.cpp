#include "dynamo/http_transport.h"

#include <curl/curl.h>
#include <pthread.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <unistd.h>
#include <fmt/format.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <deque>
#include <map>
#include <mutex>
#include <optional>
#include <thread>

#include "dynamo/errors.h"
#include "dynamo/json.h"

namespace dynamorph::dynamo {
namespace {
std::atomic<std::int64_t> on_the_wire{0};
}  // namespace

const std::atomic<std::int64_t>& requests_in_flight() { return on_the_wire; }

namespace {

struct CurlGlobal {
  CurlGlobal() { curl_global_init(CURL_GLOBAL_DEFAULT); }
};

bool header_is(std::string_view line, std::string_view name) {
  if (line.size() <= name.size() || line[name.size()] != ':') return false;
  for (std::size_t i = 0; i < name.size(); ++i) {
    char a = line[i], b = name[i];
    if (a >= 'A' && a <= 'Z') a = static_cast<char>(a - 'A' + 'a');
    if (b >= 'A' && b <= 'Z') b = static_cast<char>(b - 'A' + 'a');
    if (a != b) return false;
  }
  return true;
}

std::string header_value(std::string_view line, std::size_t name_len) {
  std::string_view v = line.substr(name_len + 1);
  while (!v.empty() && (v.front() == ' ' || v.front() == '\t')) v.remove_prefix(1);
  while (!v.empty() && (v.back() == '\r' || v.back() == '\n' || v.back() == ' ')) v.remove_suffix(1);
  return std::string(v);
}

// Keeps one header line of the final response; a new status line (after a 100 Continue or a
// redirect) starts the list again.
void keep_header(HttpResponse& response, std::string_view line) {
  if (line.substr(0, 5) == "HTTP/") {
    response.headers.clear();
    return;
  }
  auto colon = line.find(':');
  if (colon == std::string_view::npos || colon == 0) return;
  std::string name(line.substr(0, colon));
  for (char& c : name) {
    if (c >= 'A' && c <= 'Z') c = static_cast<char>(c - 'A' + 'a');
  }
  response.headers.emplace_back(std::move(name), header_value(line, colon));
}

}  // namespace

const std::string* HttpResponse::header(std::string_view lowercase_name) const {
  for (const auto& [name, value] : headers) {
    if (name == lowercase_name) return &value;
  }
  return nullptr;
}

struct HttpTransport::Impl {
  struct Transfer {
    CURL* easy = nullptr;
    std::vector<curl_slist> header_list;  // CURLOPT_HTTPHEADER: into request.headers
    HttpRequest request;
    HttpResponse response;
    Callback done;
    char error[CURL_ERROR_SIZE] = {0};
  };
  struct Timer {
    std::chrono::steady_clock::time_point when;
    std::function<void()> fn;
  };

  TransportOptions options;
  CURLM* multi = nullptr;
  // libcurl's socket interface: the loop waits on an epoll set of the sockets libcurl names
  // (socket_callback) and tells it which one is ready, so a turn costs one epoll_wait and work
  // on the ready transfers only. curl_multi_perform instead visits every transfer and polls each
  // socket on its own: about 24 poll(2) calls per request with 16 writes in flight.
  int epoll_fd = -1;
  int wake_fd = -1;  // an eventfd in the epoll set: submit() and schedule() from other threads
  std::thread thread;
  std::atomic<std::thread::id> thread_id{};
  std::atomic<bool> stopping{false};

  std::mutex mutex;  // guards the two inboxes
  std::deque<std::unique_ptr<Transfer>> inbox;
  std::vector<Timer> timer_inbox;

  // I/O thread only:
  std::optional<std::chrono::steady_clock::time_point> curl_deadline;  // timer_callback's
  std::vector<bool> watched;  // by socket number: in the epoll set (socket_callback)
  std::multimap<std::chrono::steady_clock::time_point, std::function<void()>> timers;
  std::vector<CURL*> idle_handles;
  std::size_t running = 0;

  static std::size_t on_body(char* data, std::size_t size, std::size_t n, void* user) {
    auto* t = static_cast<Transfer*>(user);
    t->response.body.append(data, size * n);
    return size * n;
  }
  static std::size_t on_header(char* data, std::size_t size, std::size_t n, void* user) {
    auto* t = static_cast<Transfer*>(user);
    std::string_view line(data, size * n);
    if (t->request.raw) keep_header(t->response, line);
    if (header_is(line, "x-amzn-RequestId")) {
      t->response.request_id = header_value(line, 16);
    } else if (header_is(line, "Content-Length")) {
      // One allocation of the right size (plus parser padding) instead of doubling growth:
      // a 1 MB Scan page would otherwise copy itself ~8 times and end in a 2 MB buffer.
      std::size_t n = std::strtoull(header_value(line, 14).c_str(), nullptr, 10);
      if (n > 0 && n < (64u << 20)) t->response.body.reserve(n + 64);
    } else if (header_is(line, "Date")) {
      t->response.date = header_value(line, 4);
    }
    return size * n;
  }

  // A handle's fixed options, set once when it is made; a handle is reused without
  // curl_easy_reset, so every option a request may change is set again by start(). Never left
  // to libcurl's defaults or the environment: https always verifies the peer's chain and host
  // name, only http and https are spoken, no redirect is followed (a signed request must not go
  // elsewhere).
  CURL* new_handle() const {
    CURL* e = curl_easy_init();
    if (e == nullptr) throw std::bad_alloc();
    curl_easy_setopt(e, CURLOPT_SSL_VERIFYPEER, 1L);
    curl_easy_setopt(e, CURLOPT_SSL_VERIFYHOST, 2L);
    curl_easy_setopt(e, CURLOPT_PROTOCOLS_STR, "http,https");
    curl_easy_setopt(e, CURLOPT_FOLLOWLOCATION, 0L);
    if (!options.ca_bundle.empty()) curl_easy_setopt(e, CURLOPT_CAINFO, options.ca_bundle.c_str());
    curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, &Impl::on_body);
    curl_easy_setopt(e, CURLOPT_HEADERFUNCTION, &Impl::on_header);
    curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(e, CURLOPT_TCP_NODELAY, 1L);
    curl_easy_setopt(e, CURLOPT_TCP_KEEPALIVE, 1L);
    curl_easy_setopt(e, CURLOPT_CONNECTTIMEOUT_MS, static_cast<long>(options.connect_timeout.count()));
    return e;
  }

  void start(std::unique_ptr<Transfer> t) {
    CURL* e;
    if (!idle_handles.empty()) {
      e = idle_handles.back();
      idle_handles.pop_back();
    } else {
      e = new_handle();
    }
    t->easy = e;
    // The header list points into the request's own strings (libcurl only reads it), so a
    // request's headers cost no copies; the last entry turns off the 100-continue round trip,
    // which would only add latency (DynamoDB answers at once).
    static char kNoExpect[] = "Expect:";
    t->header_list.resize(t->request.headers.size() + 1);
    for (std::size_t i = 0; i < t->request.headers.size(); ++i) {
      t->header_list[i].data = t->request.headers[i].data();
      t->header_list[i].next = &t->header_list[i + 1];
    }
    t->header_list.back() = curl_slist{kNoExpect, nullptr};
    curl_easy_setopt(e, CURLOPT_URL, t->request.url.c_str());
    if (t->request.method == "GET") {
      curl_easy_setopt(e, CURLOPT_HTTPGET, 1L);
      curl_easy_setopt(e, CURLOPT_CUSTOMREQUEST, nullptr);
    } else {
      // POST fields carry the body of a PUT too; the method line is then replaced.
      curl_easy_setopt(e, CURLOPT_POST, 1L);
      static const std::string kEmpty;
      const std::string& body = t->request.body ? *t->request.body : kEmpty;
      curl_easy_setopt(e, CURLOPT_POSTFIELDSIZE_LARGE, static_cast<curl_off_t>(body.size()));
      curl_easy_setopt(e, CURLOPT_POSTFIELDS, body.data());
      curl_easy_setopt(e, CURLOPT_CUSTOMREQUEST,
                       t->request.method == "POST" ? nullptr : t->request.method.c_str());
    }
    curl_easy_setopt(e, CURLOPT_HTTPHEADER, t->header_list.data());
    curl_easy_setopt(e, CURLOPT_WRITEDATA, t.get());
    curl_easy_setopt(e, CURLOPT_HEADERDATA, t.get());
    curl_easy_setopt(e, CURLOPT_ERRORBUFFER, t->error);
    curl_easy_setopt(e, CURLOPT_PRIVATE, t.get());
    curl_easy_setopt(e, CURLOPT_ACCEPT_ENCODING, t->request.raw ? nullptr : "");
    auto timeout = options.request_timeout;
    if (t->request.timeout.count() > 0 && t->request.timeout < timeout) timeout = t->request.timeout;
    curl_easy_setopt(e, CURLOPT_TIMEOUT_MS, static_cast<long>(timeout.count()));
    curl_multi_add_handle(multi, e);
    ++running;
    t.release();  // owned through CURLOPT_PRIVATE until finish()
  }

  void finish(CURL* e, CURLcode code) {
    Transfer* raw = nullptr;
    curl_easy_getinfo(e, CURLINFO_PRIVATE, &raw);
    std::unique_ptr<Transfer> t(raw);
    curl_multi_remove_handle(multi, e);
    --running;
    curl_easy_getinfo(e, CURLINFO_RESPONSE_CODE, &t->response.status);
    if (code != CURLE_OK) {
      t->response.curl_code = static_cast<int>(code);
      t->response.curl_error = t->error[0] ? t->error : curl_easy_strerror(code);
      t->response.status = 0;
    }
    // An idle handle keeps no pointer into the transfer that is about to be freed.
    curl_easy_setopt(e, CURLOPT_ERRORBUFFER, nullptr);
    curl_easy_setopt(e, CURLOPT_HTTPHEADER, nullptr);
    curl_easy_setopt(e, CURLOPT_POSTFIELDS, nullptr);
    idle_handles.push_back(e);
    pad_for_parsing(t->response.body);
    Callback done = std::move(t->done);
    on_the_wire.fetch_sub(1, std::memory_order_relaxed);
    done(std::move(t->response));
  }

  static int socket_callback(CURL*, curl_socket_t fd, int what, void* user, void*) {
    auto* self = static_cast<Impl*>(user);
    if (fd < 0) return 0;
    auto& watched = self->watched;
    if (static_cast<std::size_t>(fd) >= watched.size()) watched.resize(fd + 64, false);
    if (what == CURL_POLL_REMOVE) {
      epoll_ctl(self->epoll_fd, EPOLL_CTL_DEL, fd, nullptr);  // may be closed already: no matter
      watched[fd] = false;
      return 0;
    }
    epoll_event ev{};
    ev.events = (what & CURL_POLL_IN ? EPOLLIN : 0u) | (what & CURL_POLL_OUT ? EPOLLOUT : 0u);
    ev.data.fd = fd;
    // The set may disagree with `watched` when a socket was closed without a REMOVE (the kernel
    // drops it from the set) and its number reused: the other operation then does it.
    const int op = watched[fd] ? EPOLL_CTL_MOD : EPOLL_CTL_ADD;
    if (epoll_ctl(self->epoll_fd, op, fd, &ev) != 0)
      epoll_ctl(self->epoll_fd, op == EPOLL_CTL_ADD ? EPOLL_CTL_MOD : EPOLL_CTL_ADD, fd, &ev);
    watched[fd] = true;
    return 0;
  }

  static int timer_callback(CURLM*, long timeout_ms, void* user) {
    auto* self = static_cast<Impl*>(user);
    if (timeout_ms < 0)
      self->curl_deadline.reset();
    else
      self->curl_deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(timeout_ms);
    return 0;
  }

  void wake() const {
    const std::uint64_t one = 1;
    [[maybe_unused]] auto n = ::write(wake_fd, &one, sizeof one);  // a full counter still wakes
  }

  void drain_finished() {
    int queued = 0;
    while (CURLMsg* m = curl_multi_info_read(multi, &queued)) {
      if (m->msg == CURLMSG_DONE) finish(m->easy_handle, m->data.result);
    }
  }

  void loop() {
    using std::chrono::steady_clock;
    epoll_event events[64];
    while (true) {
      std::deque<std::unique_ptr<Transfer>> fresh;
      std::vector<Timer> new_timers;
      {
        std::lock_guard lock(mutex);
        fresh.swap(inbox);
        new_timers.swap(timer_inbox);
      }
      for (auto& tm : new_timers) timers.emplace(tm.when, std::move(tm.fn));
      bool stop = stopping.load();
      if (stop && fresh.empty() && running == 0 && timers.empty()) break;
      for (auto& t : fresh) start(std::move(t));  // each sets curl's timer to now

      auto now = steady_clock::now();
      int wait_ms = 100;
      auto wait_until = [&](steady_clock::time_point when) {
        auto d = std::chrono::duration_cast<std::chrono::milliseconds>(when - now).count();
        // Rounded up: waking a little before a deadline would only turn the loop once more.
        if (when > now + std::chrono::milliseconds(d)) ++d;
        wait_ms = static_cast<int>(std::clamp<long long>(d, 0, wait_ms));
      };
      if (curl_deadline) wait_until(*curl_deadline);
      if (!timers.empty()) wait_until(timers.begin()->first);
      if (stop && running == 0) wait_ms = 0;
      if (wait_ms > 0) {
        std::lock_guard lock(mutex);
        if (!inbox.empty() || !timer_inbox.empty()) wait_ms = 0;
      }
      int n = epoll_wait(epoll_fd, events, 64, wait_ms);
      int still = 0;
      for (int i = 0; i < n; ++i) {
        const int fd = events[i].data.fd;
        if (fd == wake_fd) {
          std::uint64_t count = 0;
          [[maybe_unused]] auto r = ::read(wake_fd, &count, sizeof count);
          continue;
        }
        int mask = 0;
        if (events[i].events & EPOLLIN) mask |= CURL_CSELECT_IN;
        if (events[i].events & EPOLLOUT) mask |= CURL_CSELECT_OUT;
        if (events[i].events & (EPOLLERR | EPOLLHUP)) mask |= CURL_CSELECT_ERR;
        curl_multi_socket_action(multi, fd, mask, &still);
      }
      now = steady_clock::now();
      if (curl_deadline && *curl_deadline <= now) {
        curl_deadline.reset();  // the call below sets the next one
        curl_multi_socket_action(multi, CURL_SOCKET_TIMEOUT, 0, &still);
      }
      drain_finished();
      // Fire due timers (they may submit new work; the next turn picks it up).
      now = steady_clock::now();
      while (!timers.empty() && timers.begin()->first <= now) {
        auto fn = std::move(timers.begin()->second);
        timers.erase(timers.begin());
        fn();
      }
      if (stop && running == 0) {
        // On shutdown pending timers fire at once so every waiter gets its answer.
        while (!timers.empty()) {
          auto fn = std::move(timers.begin()->second);
          timers.erase(timers.begin());
          fn();
        }
      }
    }
  }
};

HttpTransport::HttpTransport(TransportOptions options) : impl_(std::make_unique<Impl>()) {
  static CurlGlobal global;
  impl_->options = options;
  impl_->multi = curl_multi_init();
  impl_->epoll_fd = epoll_create1(EPOLL_CLOEXEC);
  impl_->wake_fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
  if (impl_->multi == nullptr || impl_->epoll_fd < 0 || impl_->wake_fd < 0) {
    const int err = errno;
    if (impl_->multi) curl_multi_cleanup(impl_->multi);
    if (impl_->epoll_fd >= 0) ::close(impl_->epoll_fd);
    if (impl_->wake_fd >= 0) ::close(impl_->wake_fd);
    throw Error(fmt::format("the HTTP transport could not be set up: {}",
                            impl_->multi ? std::strerror(err) : "curl_multi_init failed"));
  }
  epoll_event wake_ev{};
  wake_ev.events = EPOLLIN;
  wake_ev.data.fd = impl_->wake_fd;
  epoll_ctl(impl_->epoll_fd, EPOLL_CTL_ADD, impl_->wake_fd, &wake_ev);
  curl_multi_setopt(impl_->multi, CURLMOPT_SOCKETFUNCTION, &Impl::socket_callback);
  curl_multi_setopt(impl_->multi, CURLMOPT_SOCKETDATA, impl_.get());
  curl_multi_setopt(impl_->multi, CURLMOPT_TIMERFUNCTION, &Impl::timer_callback);
  curl_multi_setopt(impl_->multi, CURLMOPT_TIMERDATA, impl_.get());
  curl_multi_setopt(impl_->multi, CURLMOPT_MAX_HOST_CONNECTIONS, options.max_connections);
  curl_multi_setopt(impl_->multi, CURLMOPT_MAXCONNECTS, options.max_connections);
  impl_->thread = std::thread([this] {
    pthread_setname_np(pthread_self(), "dynamorph-io");  // for top -H, perf and gdb
    impl_->thread_id = std::this_thread::get_id();
    impl_->loop();
  });
}

HttpTransport::~HttpTransport() {
  impl_->stopping = true;
  impl_->wake();
  impl_->thread.join();
  for (CURL* e : impl_->idle_handles) curl_easy_cleanup(e);
  curl_multi_cleanup(impl_->multi);  // closes the pooled connections (their REMOVEs come here)
  ::close(impl_->epoll_fd);
  ::close(impl_->wake_fd);
}

void HttpTransport::submit(HttpRequest request, Callback done) {
  on_the_wire.fetch_add(1, std::memory_order_relaxed);
  auto t = std::make_unique<Impl::Transfer>();
  t->request = std::move(request);
  t->done = std::move(done);
  {
    std::lock_guard lock(impl_->mutex);
    impl_->inbox.push_back(std::move(t));
  }
  // From the I/O thread itself (a request sent from an answer's callback) the loop looks at the
  // inbox before it polls again: no wake-up, which is a write(2) and a poll(2) per request.
  if (!on_io_thread()) impl_->wake();
}

void HttpTransport::schedule(std::chrono::steady_clock::time_point when, std::function<void()> fn) {
  {
    std::lock_guard lock(impl_->mutex);
    impl_->timer_inbox.push_back({when, std::move(fn)});
  }
  if (!on_io_thread()) impl_->wake();
}

bool HttpTransport::on_io_thread() const { return std::this_thread::get_id() == impl_->thread_id; }

}  // namespace dynamorph::dynamo
