/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* vmem-touch MIB: maps MIB MiB of anonymous memory, writes one byte in
 * every page, and prints how long that took by the guest's monotonic
 * clock:
 *
 *   vmem-touch: 256 MiB touched in 123.456 ms
 *
 * Built static into the end-to-end guest's initramfs (build-guest.sh);
 * its init runs it right after boot when the kernel command line has
 * vmem_touch_mib=MIB.  Exits 1 when the memory cannot be mapped, 2 on a
 * bad argument. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

static double
now_ms (void)
{
  struct timespec ts;
  clock_gettime (CLOCK_MONOTONIC, &ts);
  return (double) ts.tv_sec * 1e3 + (double) ts.tv_nsec / 1e6;
}

int
main (int argc, char **argv)
{
  char *end = NULL;
  unsigned long mib;
  long page = sysconf (_SC_PAGESIZE);

  errno = 0;
  mib = argc == 2 ? strtoul (argv[1], &end, 10) : 0;
  if (argc != 2 || errno != 0 || end == argv[1] || *end != '\0' || mib == 0 || mib > 1UL << 20)
    {
      fprintf (stderr, "usage: vmem-touch MIB (1 to 1048576)\n");
      return 2;
    }
  if (page <= 0)
    page = 4096;

  size_t len = (size_t) mib << 20;
  double t0 = now_ms ();
  volatile char *p = mmap (NULL, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (p == MAP_FAILED)
    {
      fprintf (stderr, "vmem-touch: cannot map %lu MiB: %s\n", mib, strerror (errno));
      return 1;
    }
  for (size_t off = 0; off < len; off += (size_t) page)
    p[off] = 1;
  double t1 = now_ms ();
  printf ("vmem-touch: %lu MiB touched in %.3f ms\n", mib, t1 - t0);
  fflush (stdout);
  munmap ((void *) p, len);
  return 0;
}
