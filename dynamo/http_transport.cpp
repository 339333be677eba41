#include "dynamo/http_transport.h"

#include <curl/curl.h>
#include <pthread.h>
#include <fmt/format.h>

#include <atomic>
#include <cstdlib>
#include <deque>
#include <map>
#include <mutex>
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
    curl_slist* headers = nullptr;
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
  std::thread thread;
  std::atomic<std::thread::id> thread_id{};
  std::atomic<bool> stopping{false};

  std::mutex mutex;  // guards the two inboxes
  std::deque<std::unique_ptr<Transfer>> inbox;
  std::vector<Timer> timer_inbox;

  // I/O thread only:
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

  // Set on every transfer, never left to libcurl's defaults or the environment: https always
  // verifies the peer's chain and host name, only http and https are spoken, no redirect is
  // followed (a signed request must not go elsewhere).
  void secure(CURL* e) const {
    curl_easy_setopt(e, CURLOPT_SSL_VERIFYPEER, 1L);
    curl_easy_setopt(e, CURLOPT_SSL_VERIFYHOST, 2L);
    curl_easy_setopt(e, CURLOPT_PROTOCOLS_STR, "http,https");
    curl_easy_setopt(e, CURLOPT_FOLLOWLOCATION, 0L);
    if (!options.ca_bundle.empty()) curl_easy_setopt(e, CURLOPT_CAINFO, options.ca_bundle.c_str());
  }

  void start(std::unique_ptr<Transfer> t) {
    CURL* e;
    if (!idle_handles.empty()) {
      e = idle_handles.back();
      idle_handles.pop_back();
      curl_easy_reset(e);
    } else {
      e = curl_easy_init();
    }
    t->easy = e;
    for (const auto& h : t->request.headers) t->headers = curl_slist_append(t->headers, h.c_str());
    // DynamoDB answers at once; the 100-continue round trip would only add latency.
    t->headers = curl_slist_append(t->headers, "Expect:");
    curl_easy_setopt(e, CURLOPT_URL, t->request.url.c_str());
    if (t->request.method == "GET") {
      curl_easy_setopt(e, CURLOPT_HTTPGET, 1L);
    } else {
      // POST fields carry the body of a PUT too; the method line is then replaced.
      curl_easy_setopt(e, CURLOPT_POST, 1L);
      static const std::string kEmpty;
      const std::string& body = t->request.body ? *t->request.body : kEmpty;
      curl_easy_setopt(e, CURLOPT_POSTFIELDSIZE_LARGE, static_cast<curl_off_t>(body.size()));
      curl_easy_setopt(e, CURLOPT_POSTFIELDS, body.data());
      if (t->request.method != "POST") {
        curl_easy_setopt(e, CURLOPT_CUSTOMREQUEST, t->request.method.c_str());
      }
    }
    curl_easy_setopt(e, CURLOPT_HTTPHEADER, t->headers);
    curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, &Impl::on_body);
    curl_easy_setopt(e, CURLOPT_WRITEDATA, t.get());
    curl_easy_setopt(e, CURLOPT_HEADERFUNCTION, &Impl::on_header);
    curl_easy_setopt(e, CURLOPT_HEADERDATA, t.get());
    curl_easy_setopt(e, CURLOPT_ERRORBUFFER, t->error);
    curl_easy_setopt(e, CURLOPT_PRIVATE, t.get());
    curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(e, CURLOPT_TCP_NODELAY, 1L);
    curl_easy_setopt(e, CURLOPT_TCP_KEEPALIVE, 1L);
    if (!t->request.raw) curl_easy_setopt(e, CURLOPT_ACCEPT_ENCODING, "");
    curl_easy_setopt(e, CURLOPT_CONNECTTIMEOUT_MS, static_cast<long>(options.connect_timeout.count()));
    auto timeout = options.request_timeout;
    if (t->request.timeout.count() > 0 && t->request.timeout < timeout) timeout = t->request.timeout;
    curl_easy_setopt(e, CURLOPT_TIMEOUT_MS, static_cast<long>(timeout.count()));
    secure(e);
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
    curl_slist_free_all(t->headers);
    idle_handles.push_back(e);
    pad_for_parsing(t->response.body);
    Callback done = std::move(t->done);
    on_the_wire.fetch_sub(1, std::memory_order_relaxed);
    done(std::move(t->response));
  }

  void loop() {
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
      for (auto& t : fresh) start(std::move(t));

      int still = 0;
      curl_multi_perform(multi, &still);
      int queued = 0;
      while (CURLMsg* m = curl_multi_info_read(multi, &queued)) {
        if (m->msg == CURLMSG_DONE) finish(m->easy_handle, m->data.result);
      }
      // Fire due timers (they may submit new work; the next turn picks it up).
      auto now = std::chrono::steady_clock::now();
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
        continue;
      }
      int wait_ms = 100;
      if (!timers.empty()) {
        auto d = std::chrono::duration_cast<std::chrono::milliseconds>(timers.begin()->first - now);
        wait_ms = static_cast<int>(std::clamp<long long>(d.count(), 0, 100));
      }
      {
        std::lock_guard lock(mutex);
        if (!inbox.empty() || !timer_inbox.empty()) wait_ms = 0;
      }
      if (wait_ms > 0) curl_multi_poll(multi, nullptr, 0, wait_ms, nullptr);
    }
  }
};

HttpTransport::HttpTransport(TransportOptions options) : impl_(std::make_unique<Impl>()) {
  static CurlGlobal global;
  impl_->options = options;
  impl_->multi = curl_multi_init();
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
  curl_multi_wakeup(impl_->multi);
  impl_->thread.join();
  for (CURL* e : impl_->idle_handles) curl_easy_cleanup(e);
  curl_multi_cleanup(impl_->multi);
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
  if (!on_io_thread()) curl_multi_wakeup(impl_->multi);
}

void HttpTransport::schedule(std::chrono::steady_clock::time_point when, std::function<void()> fn) {
  {
    std::lock_guard lock(impl_->mutex);
    impl_->timer_inbox.push_back({when, std::move(fn)});
  }
  if (!on_io_thread()) curl_multi_wakeup(impl_->multi);
}

bool HttpTransport::on_io_thread() const { return std::this_thread::get_id() == impl_->thread_id; }

}  // namespace dynamorph::dynamo
