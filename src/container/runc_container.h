// runc containers in relive's container commands: checkpoint_container() and
// restore_container() hand over to these when given a container name, or an archive of one.
#pragma once

#include "relive/container.h"
#include "wire/archive_types.h"

namespace relive::container {

// The steps, in order: `runc state` (its init, bundle, rootfs); `runc pause` (the freezer
// cgroup: the rootfs and memory are then one consistent moment); the bundle's config.json and
// rootfs tar (runc_bundle.h); `runc checkpoint` (killing it, unless leave_running); pack the
// archive; resume, unless runc ended it. A failure before runc ended the container resumes it;
// a packing failure after that restores it from the images, same name and bundle.
Result<ContainerCheckpointResult> checkpoint_runc_container(const ContainerCheckpointOptions& o);

// True when the archive's entries say it holds a runc container.
bool is_runc_archive(const Manifest& m);

// Unpacks the verified archive, makes the bundle (runc_bundle.h: prepare_bundle) and runs
// `runc restore --detach`. If that fails, no container of that name is left behind.
Result<ContainerRestoreResult> restore_runc_container(const ContainerRestoreOptions& o,
                                                      double verify_ms);

}  // namespace relive::container
