// dynamorph command line: parses flags and hands over to migrations/. Nothing else lives here.
#include <CLI/CLI.hpp>

#include <execinfo.h>
#include <unistd.h>

#include <chrono>
#include <csignal>
#include <cstdio>
#include <iostream>
#include <memory>

#include "benchmark/bench.h"
#include "dynamo/http_transport.h"
#include "dynamo/redact.h"
#include "dynamo/suggest.h"
#include "benchmark/synthetic.h"
#include "migrations/config.h"
#include "migrations/errors.h"
#include "migrations/metrics.h"
#include "migrations/metrics_server.h"
#include "migrations/scaffold.h"
#include "migrations/session.h"
#include "migrations/step_metrics.h"

namespace {

using namespace dynamorph;
using migrations::ExitCode;

std::atomic<bool>* g_stop = nullptr;
std::atomic<bool> g_signalled{false};  // a signal came, whatever it stopped
// The stop flag once the command is over (its own died with it): a signal then only ends the
// wait for a last scrape of /metrics.
std::atomic<bool> g_after_command{false};

// "dynamorph: stopping: waiting for N requests in flight (…)" with write(2) only: what a signal
// handler may do.
void say_stopping() {
  char buf[160];
  std::size_t n = 0;
  auto put = [&](const char* s) {
    while (*s && n < sizeof buf) buf[n++] = *s++;
  };
  put("\ndynamorph: stopping: waiting for ");
  std::int64_t k = dynamo::requests_in_flight().load(std::memory_order_relaxed);
  if (k < 0) k = 0;
  char digits[24];
  int d = 0;
  do {
    digits[d++] = static_cast<char>('0' + k % 10);
    k /= 10;
  } while (k > 0 && d < 23);
  while (d > 0 && n < sizeof buf) buf[n++] = digits[--d];
  put(" requests in flight, then saving the checkpoint (Ctrl-C again to stop at once)\n");
  [[maybe_unused]] auto w = ::write(STDERR_FILENO, buf, n);
}

extern "C" void on_signal(int sig) {
  g_signalled.store(true);
  if (g_stop == &g_after_command && !g_after_command.load()) {
    g_after_command.store(true);
    return;
  }
  if (g_stop && !g_stop->load()) {
    g_stop->store(true);  // first signal: stop reading, drain, checkpoint, release
    say_stopping();
    return;
  }
  std::signal(sig, SIG_DFL);  // second signal: leave now
  std::raise(sig);
}

// A crash (a bug: no input should cause one) says so on stderr with the stack, resolvable with
// `addr2line -f -C -e dynamorph +0xOFFSET`, then dies of the same signal: the exit status and a
// core dump stay what they would have been. Not in sanitizer builds, whose own reports say more.
extern "C" void on_fatal_signal(int sig) {
  char head[96];
  const int n = std::snprintf(head, sizeof head,
                              "\ndynamorph: crashed with signal %d (%s); this is a bug, please "
                              "report it with this stack:\n",
                              sig, sig == SIGSEGV ? "SIGSEGV" : sig == SIGBUS ? "SIGBUS"
                                   : sig == SIGFPE ? "SIGFPE" : sig == SIGILL ? "SIGILL" : "SIGABRT");
  [[maybe_unused]] auto w = ::write(STDERR_FILENO, head, static_cast<std::size_t>(n));
  void* frames[64];
  backtrace_symbols_fd(frames, backtrace(frames, 64), STDERR_FILENO);
  std::signal(sig, SIG_DFL);
  std::raise(sig);
}

void report_crashes() {
#if !defined(__SANITIZE_ADDRESS__) && !defined(__SANITIZE_THREAD__)
  static char alt_stack[64 * 1024];  // a stack overflow of the main thread still gets its report
  stack_t ss{};
  ss.ss_sp = alt_stack;
  ss.ss_size = sizeof alt_stack;
  sigaltstack(&ss, nullptr);
  void* warm[1];
  backtrace(warm, 1);  // loads the unwinder now: not from inside the handler
  struct sigaction sa {};
  sa.sa_handler = on_fatal_signal;
  sa.sa_flags = SA_ONSTACK | SA_RESETHAND;
  sigemptyset(&sa.sa_mask);
  for (int sig : {SIGSEGV, SIGBUS, SIGFPE, SIGILL, SIGABRT}) sigaction(sig, &sa, nullptr);
#endif
}

// `--metrics ADDR` for the whole command: bound before the command's first request, stopped
// when main returns. With DYNAMORPH_METRICS_LINGER set, it first serves the final values until
// one scrape has read them or that long has passed (not after a signal).
class MetricsScope {
 public:
  void start(const std::string& address) {
    linger_ = migrations::metrics::linger_from_environment();
    migrations::register_process_metrics();
    server_ = migrations::metrics::MetricsServer::start(address, migrations::metrics::registry());
  }
  ~MetricsScope() {
    if (!server_) return;
    g_stop = &g_after_command;
    std::signal(SIGINT, on_signal);
    std::signal(SIGTERM, on_signal);
    std::cout.flush();
    std::cerr.flush();
    if (linger_.count() > 0 && !g_signalled.load()) server_->linger(linger_, &g_after_command);
    server_->stop();
  }

 private:
  std::chrono::milliseconds linger_{0};
  std::unique_ptr<migrations::metrics::MetricsServer> server_;
};

int fail(ExitCode code, const std::string& message) {
  std::cerr << "dynamorph: " << dynamo::redact(message) << "\n";
  return static_cast<int>(code);
}

}  // namespace

int main(int argc, char** argv) {
  report_crashes();
  CLI::App app{"dynamorph: versioned migrations and bulk reshapes for Amazon DynamoDB"};
  app.set_version_flag("--version", std::string("dynamorph ") + DYNAMORPH_VERSION);
  app.require_subcommand(1);
  app.fallthrough();

  migrations::GlobalOptions g;
  std::string config, env, endpoint, region, profile, mdir, ns;
  bool verbose = false, quiet = false;
  app.add_option("--config", config, "settings file (default ./dynamorph.yaml when present)");
  app.add_option("--env", env, "environment overlay from dynamorph.yaml (or DYNAMORPH_ENV)");
  app.add_option("--endpoint", endpoint, "DynamoDB endpoint URL");
  app.add_option("--region", region, "AWS region");
  app.add_option("--profile", profile, "AWS profile");
  app.add_option("--migrations", mdir, "migrations folder");
  app.add_option("--namespace", ns, "prefix for every table name");
  app.add_flag("--json", g.json, "machine-readable output");
  auto* vflag = app.add_flag("-v,--verbose", verbose, "more detail");
  app.add_flag("-q,--quiet", quiet, "only errors and results")->excludes(vflag);
  std::string metrics_address;
  app.add_option("--metrics", metrics_address,
                 "serve Prometheus metrics at http://ADDR/metrics while the command runs "
                 "(HOST:PORT, e.g. 127.0.0.1:9464)");

  auto* init = app.add_subcommand("init", "write dynamorph.yaml and migrations/ here");

  auto* gen = app.add_subcommand("generate", "write migrations/<UTC yyyymmddHHMMSS>_<NAME>.yaml");
  migrations::GenerateOptions go;
  std::string create_table, pk, sk;
  gen->add_option("NAME", go.name, "migration name")->required();
  gen->add_option("--create-table", create_table, "start with a create_table step for this table");
  gen->add_option("--partition-key", pk, "NAME:TYPE");
  gen->add_option("--sort-key", sk, "NAME:TYPE");
  gen->add_option("--gsi", go.gsi, "NAME:TYPE[,SORT:TYPE] keys of a global index (repeatable)");

  auto* status = app.add_subcommand(
      "status", "every version: pending / running / applied / failed, checksum drift");

  auto* up = app.add_subcommand("up", "apply pending migrations");
  migrations::UpOptions uo;
  std::int64_t up_to = 0;
  int up_segments = 0;
  double up_wcu = -1, up_rcu = -1;
  std::string lock_ttl;
  auto* up_to_opt = up->add_option("--to", up_to, "apply up to and including this version");
  auto* dry_flag = up->add_flag("--dry-run", uo.dry_run, "plan and count; write nothing");
  double up_sample = 0;
  auto* sample_opt =
      up->add_option("--sample", up_sample,
                     "with --dry-run: plan from a random P percent of the scan segments and "
                     "extrapolate to the whole table")
          ->check(CLI::Range(0.001, 100.0))
          ->needs(dry_flag);
  unsigned up_sample_seed = 0;
  auto* sample_seed_opt =
      up->add_option("--sample-seed", up_sample_seed,
                     "with --sample: pick the segments from this seed (the same sample again)")
          ->needs(sample_opt);
  auto* seg_opt = up->add_option("--segments", up_segments, "parallel scan segments")
                      ->check(CLI::Range(1, 1000000));
  auto* wcu_opt =
      up->add_option("--max-wcu", up_wcu, "write capacity units per second (0 = no cap)")
          ->check(CLI::NonNegativeNumber);
  auto* rcu_opt = up->add_option("--max-rcu", up_rcu, "read capacity units per second (0 = no cap)")
                      ->check(CLI::NonNegativeNumber);
  double up_percent = 0;
  auto* pct_opt = up->add_option("--capacity-percent", up_percent,
                                 "use at most this share of the tables' provisioned capacity "
                                 "(where --max-rcu/--max-wcu are not given)")
                      ->check(CLI::Range(0.0, 100.0));
  auto* ttl_opt = up->add_option("--lock-ttl", lock_ttl, "lease duration, e.g. 30s, 5m");
  auto* worker_flag = up->add_flag("--worker", uo.worker,
               "join the run of the pending versions with the other workers (segment leases in "
               "the state table) instead of refusing while the lock is held")
      ->excludes(dry_flag);
  auto* retry_flag = up->add_flag(
      "--retry-dead-letters", uo.retry_dead_letters,
      "after a fix: run the applied versions' steps again on their dead letters only (the items "
      "on_item_error: skip left out), each read again as it is now");
  retry_flag->excludes(dry_flag)->excludes(up_to_opt)->excludes(worker_flag);

  auto* down = app.add_subcommand("down", "roll back applied migrations, newest first");
  migrations::DownOptions dopt;
  std::int64_t down_to = 0;
  int down_steps = 0;
  auto* down_to_opt = down->add_option("--to", down_to, "roll back every version above this one");
  auto* steps_opt =
      down->add_option("--steps", down_steps, "roll back this many versions (default 1)")
          ->check(CLI::PositiveNumber);
  down_to_opt->excludes(steps_opt);
  down->add_flag("--dry-run", dopt.dry_run, "plan and count; write nothing");
  down->add_flag("--force", dopt.force,
                 "a journal restore puts back items changed since the migration, too");

  auto* verify = app.add_subcommand("verify", "re-check what applied versions' pipelines did");
  migrations::VerifyOptions vopt;
  std::int64_t verify_version = 0;
  auto* verify_version_opt =
      verify->add_option("VERSION", verify_version, "one version (default: every applied one)");

  auto* unlock = app.add_subcommand("unlock", "release a lock left by a dead run");
  bool force = false;
  unlock->add_flag("--force", force, "even if held by another live owner");

  auto* mark = app.add_subcommand("mark", "repair the record of one version by hand");
  std::int64_t mark_version = 0;
  std::string mark_state;
  mark->add_option("VERSION", mark_version, "version")->required();
  mark->add_option("STATE", mark_state, "applied or pending")
      ->required()
      ->check(CLI::IsMember({"applied", "pending"}));

  auto* bench = app.add_subcommand("bench", "throughput benchmarking: seed, scan, write, migrate");
  bench->require_subcommand(1);
  benchmark::BenchOptions bo;
  std::string bench_segments, bench_in_flight, bench_mode = "batch", bench_report;
  std::int64_t bench_version = 0;
  double bench_sample = 0;
  auto common = [&](CLI::App* sub) {
    sub->add_option("--max-rcu", bo.max_rcu, "read capacity units per second (0 = no cap)")
        ->check(CLI::NonNegativeNumber);
    sub->add_option("--max-wcu", bo.max_wcu, "write capacity units per second (0 = no cap)")
        ->check(CLI::NonNegativeNumber);
    sub->add_option("--report", bench_report, "write a self-contained HTML report here");
    sub->add_flag("--keep", bo.keep, "keep the tables the benchmark created");
    sub->add_flag("--yes", bo.yes, "accept the cost against a non-loopback endpoint");
  };
  auto* b_seed = bench->add_subcommand("seed", "create a bench table and load synthetic items");
  b_seed->add_option("--items", bo.items, "how many items")->required()->check(CLI::PositiveNumber);
  b_seed->add_option("--item-bytes", bo.item_bytes, "mean item size in bytes")
      ->check(CLI::Range(benchmark::kMinItemBytes, 390000));
  b_seed->add_option("--table", bo.table, "table name (default: dynamorph_bench_<random>)");
  b_seed->add_option("--in-flight", bench_in_flight, "BatchWriteItem requests in flight (16)");
  common(b_seed);
  auto* b_scan = bench->add_subcommand("scan", "parallel-scan throughput; reads only");
  b_scan->add_option("--table", bo.table, "the table to scan")->required();
  b_scan->add_option("--segments", bench_segments, "the sweep, e.g. 1,2,4,8,16,32");
  b_scan->add_option("--duration", bo.duration_s, "seconds per setting at most (default: a full scan)")
      ->check(CLI::PositiveNumber);
  b_scan->add_option("--page-size", bo.page_size, "Limit per Scan (0: 1 MB pages)")
      ->check(CLI::NonNegativeNumber);
  common(b_scan);
  auto* b_write = bench->add_subcommand("write", "write throughput into a scratch table");
  b_write->add_option("--items", bo.items, "items per setting (20000)")->check(CLI::PositiveNumber);
  b_write->add_option("--mode", bench_mode, "batch, update or transact")
      ->check(CLI::IsMember({"batch", "update", "transact"}));
  b_write->add_option("--in-flight", bench_in_flight, "the sweep, e.g. 4,16,64");
  b_write->add_option("--item-bytes", bo.item_bytes, "mean item size in bytes")
      ->check(CLI::Range(benchmark::kMinItemBytes, 390000));
  b_write->add_option("--table", bo.table, "an empty table to write into (default: a scratch one)");
  common(b_write);
  auto* b_migrate = bench->add_subcommand(
      "migrate", "a version's pipeline steps with reads real and writes counted, never sent");
  auto* b_version = b_migrate->add_option("VERSION", bench_version,
                                          "the version (default: the first pending one)");
  b_migrate->add_option("--segments", bench_segments, "the sweep, e.g. 4,8,16");
  auto* b_sample = b_migrate->add_option("--sample", bench_sample,
                                         "read a random P percent of the scan segments")
                       ->check(CLI::Range(0.001, 100.0));
  common(b_migrate);
  auto* follow = app.add_subcommand(
      "follow", "keep replaying the source stream of a `follow: stream` step, until SIGINT/SIGTERM");
  std::int64_t follow_version = 0;
  double follow_wcu = -1;
  auto* follow_version_opt =
      follow->add_option("VERSION", follow_version, "default: the newest applied one with such a step");
  auto* follow_wcu_opt =
      follow->add_option("--max-wcu", follow_wcu, "write capacity units per second (0 = no cap)")
          ->check(CLI::NonNegativeNumber);

  try {
    app.parse(argc, argv);
  } catch (const CLI::CallForHelp& e) {
    return app.exit(e);
  } catch (const CLI::CallForAllHelp& e) {
    return app.exit(e);
  } catch (const CLI::CallForVersion& e) {
    return app.exit(e);
  } catch (const CLI::ParseError& e) {
    // "dynamorph statu": CLI11 reports the missing subcommand; name the word it did not know.
    for (int i = 1; i < argc && app.get_subcommands().empty(); ++i) {
      std::string a = argv[i];
      if (a.empty() || a[0] == '-') {
        if (a.find('=') == std::string::npos && a != "--json" && a != "-v" && a != "-q" &&
            a != "--verbose" && a != "--quiet")
          ++i;  // skip the option's value
        continue;
      }
      std::vector<std::string> commands;
      for (const auto* sub : app.get_subcommands({})) commands.push_back(sub->get_name());
      std::string list;
      for (const auto& c : commands) list += (list.empty() ? "" : ", ") + c;
      auto near = dynamo::nearest_name(a, commands);
      return fail(ExitCode::Usage, "unknown command '" + a + "' (" +
                                       (near ? "did you mean '" + *near + "'? " : "") +
                                       "commands: " + list + ")");
    }
    return fail(ExitCode::Usage, std::string(e.what()) + " (see --help)");
  }

  auto opt = [](const std::string& s) {
    return s.empty() ? std::optional<std::string>() : std::optional<std::string>(s);
  };
  g.config = opt(config);
  g.env = opt(env);
  g.endpoint = opt(endpoint);
  g.region = opt(region);
  g.profile = opt(profile);
  g.migrations_dir = opt(mdir);
  g.table_namespace = app.count("--namespace") ? std::optional<std::string>(ns) : std::nullopt;
  g.verbosity = quiet ? -1 : verbose ? 1 : 0;
  if (app.count("--metrics")) g.metrics = metrics_address;

  MetricsScope metrics;
  try {
    if (g.metrics) metrics.start(*g.metrics);  // before any request: refused = nothing written
    if (init->parsed()) {
      for (const auto& p : migrations::init_project(".")) std::cout << "wrote " << p << "\n";
      return 0;
    }
    migrations::Session session(g, std::cout, std::cerr);
    // Declared after the session, so it runs before the session dies: a late signal then
    // finds a live flag.
    struct StopAfterCommand {
      ~StopAfterCommand() { g_stop = &g_after_command; }
    } stop_after_command;
    if (gen->parsed()) {
      go.create_table = opt(create_table);
      go.partition_key = opt(pk);
      go.sort_key = opt(sk);
      // Written only once the file is: an error leaves stdout empty.
      const std::string path = migrations::generate_migration(session.config().migrations_dir, go);
      std::cout << "wrote " << path << "\n";
      return 0;
    }
    g_stop = &session.stop();
    std::signal(SIGINT, on_signal);
    std::signal(SIGTERM, on_signal);
    ExitCode code = ExitCode::Ok;
    if (status->parsed()) {
      code = session.status();
    } else if (up->parsed()) {
      if (*up_to_opt) uo.to = up_to;
      if (*seg_opt) uo.segments = up_segments;
      if (*wcu_opt) uo.max_wcu = up_wcu;
      if (*rcu_opt) uo.max_rcu = up_rcu;
      if (*pct_opt) uo.capacity_percent = up_percent;
      if (*sample_opt) uo.sample_percent = up_sample;
      if (*sample_seed_opt) uo.sample_seed = up_sample_seed;
      if (*ttl_opt) {
        auto d = migrations::parse_duration(lock_ttl);
        if (!d)
          return fail(ExitCode::Usage,
                      "--lock-ttl: expected a duration like 30s, 5m or 1h, got '" + lock_ttl + "'");
        uo.lock_ttl = *d;
      }
      code = session.up(uo);
    } else if (down->parsed()) {
      if (*down_to_opt) dopt.to = down_to;
      if (*steps_opt) dopt.steps = down_steps;
      code = session.down(dopt);
    } else if (verify->parsed()) {
      if (*verify_version_opt) vopt.version = verify_version;
      code = session.verify(vopt);
    } else if (unlock->parsed()) {
      code = session.unlock(force);
    } else if (mark->parsed()) {
      code = session.mark(mark_version, mark_state);
    } else if (bench->parsed()) {
      for (auto* sub : {b_seed, b_scan, b_write, b_migrate})
        if (sub->parsed()) bo.command = sub->get_name();
      if (!bench_segments.empty())
        bo.segments = benchmark::parse_positive_list(bench_segments, "--segments");
      if (!bench_in_flight.empty())
        bo.in_flight = benchmark::parse_positive_list(bench_in_flight, "--in-flight");
      bo.mode = *benchmark::parse_write_kind(bench_mode);
      if (!bench_report.empty()) bo.report = bench_report;
      if (*b_version) bo.version = bench_version;
      if (*b_sample) bo.sample_percent = bench_sample;
      benchmark::Bench runner(g, std::cout, std::cerr);
      g_stop = &runner.stop();
      code = runner.run(bo);
    } else if (follow->parsed()) {
      migrations::UpOptions fo;
      if (*follow_wcu_opt) fo.max_wcu = follow_wcu;
      code = session.follow(
          *follow_version_opt ? std::optional<std::int64_t>(follow_version) : std::nullopt, fo);
    }
    return static_cast<int>(code);
  } catch (const migrations::LockHeld& e) {
    return fail(ExitCode::LockHeld, e.what());
  } catch (const migrations::HistoryError& e) {
    return fail(ExitCode::History, e.what());
  } catch (const migrations::StepFailed& e) {
    return fail(ExitCode::StepFailed, e.what());
  } catch (const UsageError& e) {
    return fail(ExitCode::Usage, e.what());
  } catch (const std::exception& e) {
    return fail(ExitCode::StepFailed, e.what());
  }
}
