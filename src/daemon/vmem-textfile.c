/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include "vmem-textfile.h"
#include "vmem-error.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static gboolean
fail (GError **error, const char *path, const char *what, int err)
{
  g_set_error (error, VMEM_ERROR, VMEM_ERROR_FAILED, "cannot %s %s: %s", what, path,
               g_strerror (err));
  return FALSE;
}

gboolean
vmem_textfile_write (const char *path, const char *text, GError **error)
{
  g_autofree char *tmp = g_strconcat (path, ".tmp", NULL);
  gsize len = strlen (text);

  /* Whatever PATH.tmp is (left by a crash, or a link planted there), it
   * goes, and the write goes to a new file and nowhere else. */
  if (unlink (tmp) < 0 && errno != ENOENT)
    return fail (error, tmp, "remove", errno);
  int fd = open (tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0644);
  if (fd < 0)
    return fail (error, tmp, "create", errno);
  int err = 0;
  if (fchmod (fd, 0644) < 0)
    err = errno;
  for (gsize done = 0; err == 0 && done < len;)
    {
      ssize_t n = write (fd, text + done, len - done);
      if (n < 0 && errno == EINTR)
        continue;
      if (n < 0)
        err = errno;
      else
        done += (gsize) n;
    }
  if (close (fd) < 0 && err == 0)
    err = errno;
  if (err != 0)
    {
      unlink (tmp);
      return fail (error, tmp, "write", err);
    }
  if (rename (tmp, path) < 0)
    {
      err = errno;
      unlink (tmp);
      return fail (error, path, "replace", err);
    }
  return TRUE;
}
