/*
 * privileges: dropping root after start-up.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <grp.h>
#include <string.h>
#include <unistd.h>

#include "log.h"
#include "privileges.h"

int
privileges_check(const struct settings *s, int allow_root)
{
	if (geteuid() != 0 || s->user != NULL)
		return 0;
	if (allow_root) {
		log_warning("running as root (-r): set user in %s to drop privileges", s->path);
		return 0;
	}
	log_error("refusing to run as root: set user (and group) in %s, or start with -r"
	    " to stay root", s->path);
	return -1;
}

int
privileges_drop(const struct settings *s)
{
	gid_t gid = (gid_t)s->gid;
	uid_t uid = (uid_t)s->uid;

	if (s->user == NULL || (geteuid() == uid && getegid() == gid))
		return 0;
	if (geteuid() != 0) {
		log_error("%s:%d: user: cannot become \"%s\": not started as root",
		    s->user_where.file, s->user_where.line, s->user);
		return -1;
	}
	if (setgroups(1, &gid) != 0 || setresgid(gid, gid, gid) != 0 ||
	    setresuid(uid, uid, uid) != 0) {
		log_error("cannot become user \"%s\": %s", s->user, strerror(errno));
		return -1;
	}
	/* Make sure there is no way back. */
	if (setuid(0) == 0 || seteuid(0) == 0) {
		log_error("could regain root after switching to \"%s\"; stopping", s->user);
		return -1;
	}
	log_info("running as user %s (uid %u, gid %u)", s->user, s->uid, s->gid);
	return 0;
}
