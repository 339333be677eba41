// dynamorph command line: parses flags and hands over to migrations/. Nothing else lives here.
#include <CLI/CLI.hpp>
#include <cstdio>

int main(int argc, char** argv) {
  CLI::App app{"dynamorph: versioned migrations and bulk reshapes for Amazon DynamoDB"};
  app.set_version_flag("--version", std::string("dynamorph ") + DYNAMORPH_VERSION);
  CLI11_PARSE(app, argc, argv);
  return 0;
}
