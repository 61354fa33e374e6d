/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* PLACEHOLDER: being written */
typedef int vmem_placeholder_vmem_server;
