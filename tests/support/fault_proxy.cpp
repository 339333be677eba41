#include "fault_proxy.h"

#include <curl/curl.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <mutex>
#include <stdexcept>
#include <thread>
#include <vector>

namespace dynamorph::test {
namespace {

constexpr const char* kPython = "/usr/bin/python3";
constexpr int kStartTimeoutMs = 30'000;

std::string script_path() {
  if (const char* env = std::getenv("DYNAMORPH_FAULT_PROXY"); env && *env) return env;
  std::filesystem::path p = std::filesystem::path(__FILE__).parent_path() / "fault_proxy.py";
  return p.string();
}

[[noreturn]] void fail(const std::string& what) {
  throw std::runtime_error("FaultProxy: " + what);
}

std::string errno_text(const char* what) {
  return std::string(what) + ": " + std::strerror(errno);
}

size_t collect(char* data, size_t size, size_t n, void* out) {
  static_cast<std::string*>(out)->append(data, size * n);
  return size * n;
}

void curl_init_once() {
  static std::once_flag once;
  std::call_once(once, [] { curl_global_init(CURL_GLOBAL_DEFAULT); });
}

}  // namespace

FaultProxy::FaultProxy(std::string upstream_url) : upstream_(std::move(upstream_url)) {
  const std::string script = script_path();
  if (!std::filesystem::exists(script))
    fail("script not found at " + script + " (set DYNAMORPH_FAULT_PROXY)");

  int out[2];  // child's stdout -> us
  int in[2];   // us -> child's stdin (EOF tells it to exit)
  if (pipe2(out, O_CLOEXEC) != 0) fail(errno_text("pipe2"));
  if (pipe2(in, O_CLOEXEC) != 0) {
    int e = errno;
    close(out[0]);
    close(out[1]);
    errno = e;
    fail(errno_text("pipe2"));
  }

  // Everything the child needs is prepared before fork: after it only async-signal-safe calls.
  std::vector<std::string> args = {kPython, script, "--upstream", upstream_,
                                   "--exit-on-stdin-eof"};
  std::vector<char*> argv;
  for (auto& a : args) argv.push_back(a.data());
  argv.push_back(nullptr);

  pid_t pid = fork();
  if (pid < 0) {
    int e = errno;
    for (int fd : {out[0], out[1], in[0], in[1]}) close(fd);
    errno = e;
    fail(errno_text("fork"));
  }
  if (pid == 0) {
    // A signal mask is inherited across exec; the proxy must be able to receive SIGTERM.
    sigset_t none;
    sigemptyset(&none);
    pthread_sigmask(SIG_SETMASK, &none, nullptr);
    // dup2 clears FD_CLOEXEC on the new descriptors; the originals close on exec.
    if (dup2(in[0], STDIN_FILENO) < 0 || dup2(out[1], STDOUT_FILENO) < 0) _exit(127);
    execv(kPython, argv.data());
    _exit(127);
  }
  pid_ = pid;
  close(out[1]);
  close(in[0]);
  stdin_fd_ = in[1];

  // Read the first line, "PORT <n>".
  std::string line;
  std::string error;
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(kStartTimeoutMs);
  while (line.find('\n') == std::string::npos) {
    auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
                    deadline - std::chrono::steady_clock::now()).count();
    if (left <= 0) { error = "no PORT line within 30 s"; break; }
    pollfd p{out[0], POLLIN, 0};
    int r = poll(&p, 1, static_cast<int>(left));
    if (r < 0) {
      if (errno == EINTR) continue;
      error = errno_text("poll");
      break;
    }
    if (r == 0) continue;
    char buf[256];
    ssize_t n = read(out[0], buf, sizeof buf);
    if (n < 0) {
      if (errno == EINTR) continue;
      error = errno_text("read");
      break;
    }
    if (n == 0) { error = "proxy exited before printing its port (see stderr)"; break; }
    line.append(buf, static_cast<size_t>(n));
  }
  close(out[0]);
  if (error.empty()) {
    line.resize(line.find('\n'));
    if (line.rfind("PORT ", 0) == 0) port_ = std::atoi(line.c_str() + 5);
    if (port_ <= 0 || port_ > 65535) error = "unexpected first line from proxy: " + line;
  }
  if (!error.empty()) {
    stop();
    fail(error);
  }
}

FaultProxy::~FaultProxy() { stop(); }

void FaultProxy::stop() noexcept {
  if (stdin_fd_ >= 0) {
    close(stdin_fd_);
    stdin_fd_ = -1;
  }
  if (pid_ <= 0) return;
  kill(pid_, SIGTERM);
  // Give it up to 5 s to exit, then SIGKILL; always reap exactly our child.
  for (int i = 0; i < 500; ++i) {
    int status = 0;
    pid_t r = waitpid(pid_, &status, WNOHANG);
    if (r == pid_ || (r < 0 && errno != EINTR)) {
      pid_ = -1;
      return;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  kill(pid_, SIGKILL);
  while (waitpid(pid_, nullptr, 0) < 0 && errno == EINTR) {
  }
  pid_ = -1;
}

std::string FaultProxy::endpoint() const {
  return "http://127.0.0.1:" + std::to_string(port_);
}

std::string FaultProxy::call(const char* method, std::string_view path, std::string_view body) {
  curl_init_once();
  CURL* h = curl_easy_init();
  if (!h) fail("curl_easy_init failed");
  std::string url = endpoint() + std::string(path);
  std::string payload(body);
  std::string response;
  curl_slist* headers = curl_slist_append(nullptr, "Content-Type: application/json");
  headers = curl_slist_append(headers, "Expect:");
  curl_easy_setopt(h, CURLOPT_URL, url.c_str());
  curl_easy_setopt(h, CURLOPT_PROXY, "");  // never go through an http_proxy from the env
  curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
  curl_easy_setopt(h, CURLOPT_TIMEOUT_MS, 10'000L);
  curl_easy_setopt(h, CURLOPT_CUSTOMREQUEST, method);
  curl_easy_setopt(h, CURLOPT_HTTPHEADER, headers);
  if (std::strcmp(method, "GET") != 0) {
    curl_easy_setopt(h, CURLOPT_POSTFIELDS, payload.c_str());
    curl_easy_setopt(h, CURLOPT_POSTFIELDSIZE, static_cast<long>(payload.size()));
  }
  curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, collect);
  curl_easy_setopt(h, CURLOPT_WRITEDATA, &response);
  CURLcode rc = curl_easy_perform(h);
  long status = 0;
  curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &status);
  curl_slist_free_all(headers);
  curl_easy_cleanup(h);
  if (rc != CURLE_OK)
    fail(std::string(method) + " " + url + ": " + curl_easy_strerror(rc));
  if (status != 200)
    fail(std::string(method) + " " + url + ": HTTP " + std::to_string(status) + ": " + response);
  return response;
}

void FaultProxy::set_rules(std::string_view json) { call("POST", "/__proxy__/rules", json); }

std::string FaultProxy::stats_json() { return call("GET", "/__proxy__/stats", {}); }

void FaultProxy::reset() { call("POST", "/__proxy__/reset", {}); }

}  // namespace dynamorph::test
