/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* PLACEHOLDER: being written */
int main (void) { return 1; }
