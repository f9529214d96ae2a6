// relive container checkpoint | restore | inspect
#include <cstdio>
#include <memory>
#include <string>

#include "cli/commands.h"
#include "cli/progress_bar.h"
#include "relive/container.h"

namespace relive::cli {
namespace {

void print_pre_dump(const ContainerCheckpointResult& r) {
  std::string rounds;
  for (uint64_t p : r.pre_dump_pages) rounds += (rounds.empty() ? "" : ", ") + std::to_string(p);
  std::printf(
      "pre-dump: %zu round(s) copied %s pages in %.0f ms while the tree ran; %llu pages were "
      "written after the last one, but CRIU's dump wrote all %llu (no soft-dirty bits here)\n",
      r.pre_dump_pages.size(), rounds.c_str(), r.pre_dump_ms,
      static_cast<unsigned long long>(r.pre_dump_final_dirty),
      static_cast<unsigned long long>(r.pages_written));
}

void add_checkpoint(CLI::App& parent, int* exit_code) {
  auto opts = std::make_shared<ContainerCheckpointOptions>();
  auto* cmd = parent.add_subcommand(
      "checkpoint", "Dump a runc container (NAME) or a process tree (--pid) into one archive file");
  auto* name = cmd->add_option("name", opts->name, "A runc container (see `runc list`)");
  cmd->add_option("--pid", opts->pid, "Root of the process tree to dump")->excludes(name);
  cmd->add_flag("--whole-rootfs", opts->whole_rootfs,
                "runc: archive the whole root file system, not only what changed since creation");
  cmd->add_option("-o,--output", opts->archive, "Archive file to write")->required();
  cmd->add_flag("--leave-running", opts->leave_running, "Keep the tree running after the dump");
  cmd->add_flag("--tcp-established", opts->tcp_established,
                "Dump established TCP connections (restored with them)");
  cmd->add_option("--pre-dump", opts->pre_dump_rounds,
                  "Rounds of relive's dirty tracking before the dump: memory is copied while the "
                  "tree runs and the pages written per round are printed. On this host it does "
                  "NOT shorten the freeze: without soft-dirty bits CRIU's final dump writes every "
                  "page anyway (docs/container.md)")
      ->check(CLI::Range(0, 100));
  cmd->callback([opts, exit_code] {
    if (opts->name.empty() && opts->pid == 0) {
      *exit_code = report_failure(
          Status::InvalidArgument("container checkpoint: give a container NAME or --pid PID"));
      return;
    }
    std::shared_ptr<ProgressBar> bar = make_stderr_bar();
    opts->progress = [bar](const std::string& line) { bar->update(line); };
    Result<ContainerCheckpointResult> r = checkpoint_container(*opts);
    bar->finish();
    if (!r.ok()) {
      *exit_code = report_failure(r.status());
      return;
    }
    std::string what =
        opts->name.empty() ? "pid " + std::to_string(opts->pid) : "runc container " + opts->name;
    std::printf(
        "checkpointed %zu process(es) of %s into %s: %llu bytes (%llu bytes of images and "
        "files, %llu of rootfs tar), frozen %.2f ms, %llu pages; dump %.0f ms, pack %.0f ms\n",
        r->processes, what.c_str(), opts->archive.c_str(),
        static_cast<unsigned long long>(r->archive_bytes),
        static_cast<unsigned long long>(r->images_bytes),
        static_cast<unsigned long long>(r->rootfs_bytes), r->frozen_ms,
        static_cast<unsigned long long>(r->pages_written), r->dump_ms, r->pack_ms);
    if (!r->pre_dump_pages.empty()) print_pre_dump(*r);
    *exit_code = 0;
  });
}

void add_restore(CLI::App& parent, int* exit_code) {
  auto opts = std::make_shared<ContainerRestoreOptions>();
  auto* cmd = parent.add_subcommand(
      "restore", "Verify an archive and restore its tree into a new PID namespace");
  cmd->add_option("archive", opts->archive, "Archive file")->required();
  cmd->add_option("--name", opts->name,
                  "Label of the restored tree (state file /run/relive/containers/NAME.json); "
                  "for a runc container, the new container's name (default: its old name)");
  cmd->add_option("--bundle", opts->bundle,
                  "runc: the bundle directory to restore into (default: the source's); its "
                  "config.json is written from the archive unless it has one");
  cmd->callback([opts, exit_code] {
    std::shared_ptr<ProgressBar> bar = make_stderr_bar();
    opts->progress = [bar](const std::string& line) { bar->update(line); };
    Result<ContainerRestoreResult> r = restore_container(*opts);
    bar->finish();
    if (!r.ok()) {
      *exit_code = report_failure(r.status());
      return;
    }
    // The first line is the root's PID alone, for scripts.
    std::printf("%d\n", r->root_pid);
    if (!r->runc_name.empty()) {
      std::fprintf(stderr,
                   "restored runc container %s (bundle %s): init pid %d; verify %.0f ms, unpack "
                   "%.0f ms, restore %.0f ms\n",
                   r->runc_name.c_str(), r->bundle.c_str(), r->root_pid, r->verify_ms, r->unpack_ms,
                   r->restore_ms);
      *exit_code = 0;
      return;
    }
    std::fprintf(stderr,
                 "restored%s%s: root pid %d (pid %d in its namespace, whose init is pid %d); "
                 "verify %.0f ms, unpack %.0f ms, restore %.0f ms%s%s\n",
                 opts->name.empty() ? "" : " ", opts->name.c_str(), r->root_pid, r->ns_root_pid,
                 r->init_pid, r->verify_ms, r->unpack_ms, r->restore_ms,
                 r->state_file.empty() ? "" : "; state in ", r->state_file.c_str());
    *exit_code = 0;
  });
}

void add_inspect(CLI::App& parent, int* exit_code) {
  auto archive = std::make_shared<std::string>();
  auto json = std::make_shared<bool>(false);
  auto* cmd = parent.add_subcommand("inspect", "Describe an archive and verify its checksums");
  cmd->add_option("archive", *archive, "Archive file")->required();
  cmd->add_flag("--json", *json, "One JSON object");
  cmd->callback([archive, json, exit_code] {
    std::string partial;
    Result<std::string> r = inspect_container(*archive, *json, &partial);
    std::fputs(r.ok() ? r->c_str() : partial.c_str(), stdout);
    std::fflush(stdout);
    *exit_code = r.ok() ? 0 : report_failure(r.status());
  });
}

}  // namespace

void register_container(CLI::App& app, int* exit_code) {
  auto* cmd = app.add_subcommand(
      "container", "Checkpoint, restore and inspect runc containers and process trees");
  cmd->require_subcommand(1);
  add_checkpoint(*cmd, exit_code);
  add_restore(*cmd, exit_code);
  add_inspect(*cmd, exit_code);
}

}  // namespace relive::cli
