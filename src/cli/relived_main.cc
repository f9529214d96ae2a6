// relived: the per-host agent that receives live migrations and runs HA pairs. Neither service
// exists in this build yet (see the README's status section); rather than pretend to listen,
// relived says so and exits with EX_UNAVAILABLE.
#include <cstdio>
#include <cstring>

int main(int argc, char** argv) {
  if (argc > 1 && (std::strcmp(argv[1], "--version") == 0)) {
    std::puts("relived 0.1.0");
    return 0;
  }
  std::fputs(
      "relived: the migration and HA agent is not available in this build yet.\n"
      "         record/replay works today: relive record | replay | dump (see README.md).\n",
      stderr);
  return 69;  // EX_UNAVAILABLE
}
