/*
 * privileges: who the daemon runs as.  Started by root, it binds its
 * sockets and reads its keys and seeds first, then becomes the configured
 * user for good; it does not stay root unless told to.
 */
#ifndef TLSPROXY_PRIVILEGES_H
#define TLSPROXY_PRIVILEGES_H

#include "config.h"

/**
 * privileges_check(s, allow_root): before anything starts: -1 (logged) when
 * running as root with no user setting and ${allow_root} not given.
 */
int privileges_check(const struct settings *s, int allow_root);

/**
 * privileges_drop(s): become ${s}'s user and group (and only those groups),
 * irrevocably; a no-op without a user setting or when already that user.
 * 0, or -1 (logged) when the switch failed.
 */
int privileges_drop(const struct settings *s);

#endif
