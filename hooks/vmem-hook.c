/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* libvirt qemu hook: installed as /etc/libvirt/hooks/qemu.d/50-vmemd. */
#include "vmem-hook-lib.h"

#include <signal.h>
#include <unistd.h>

int
main (int argc, char **argv)
{
  signal (SIGPIPE, SIG_IGN);
  return vmem_hook_run (argc, argv, STDIN_FILENO, STDOUT_FILENO, STDERR_FILENO);
}
