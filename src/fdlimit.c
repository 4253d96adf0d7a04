/*
 * fdlimit: raising the soft descriptor limit to the hard one at start-up.
 *
 * A shell gives its processes a soft RLIMIT_NOFILE of 1024 under a hard one
 * hundreds of times larger; a proxy left at 1024 turns clients away with
 * EMFILE at about 480 connections.  Only the hard limit is a decision of
 * whoever started the daemon (ulimit -Hn, the unit's LimitNOFILE=), so the
 * soft one is raised to it, and a limit below what the listeners' settings
 * allow is said at start-up rather than discovered under load.
 */
#include <errno.h>
#include <string.h>
#include <sys/resource.h>

#include "fdlimit.h"
#include "log.h"

uint64_t
fdlimit_room(uint64_t limit, uint64_t workers, size_t nlisteners)
{
	uint64_t reserve = FDLIMIT_BASE + FDLIMIT_PER_WORKER * workers + (uint64_t)nlisteners;

	return limit > reserve ? (limit - reserve) / 2 : 0;
}

int
fdlimit_raise(const struct settings *s)
{
	struct rlimit rl;
	uint64_t want = 0, room;
	rlim_t was;
	int rc = 0;

	if (getrlimit(RLIMIT_NOFILE, &rl) != 0) {
		log_warning("descriptor limit: getrlimit: %s", strerror(errno));
		return -1;
	}
	was = rl.rlim_cur;
	if (rl.rlim_cur < rl.rlim_max) {
		rl.rlim_cur = rl.rlim_max;
		if (setrlimit(RLIMIT_NOFILE, &rl) != 0) {
			log_warning("descriptor limit: cannot raise %llu to the hard limit %llu: %s",
			    (unsigned long long)was, (unsigned long long)rl.rlim_max,
			    strerror(errno));
			rl.rlim_cur = was;
			rc = -1;
		}
	}
	if (rl.rlim_cur != was)
		log_info("descriptor limit raised from %llu to the hard limit %llu",
		    (unsigned long long)was, (unsigned long long)rl.rlim_cur);
	room = fdlimit_room((uint64_t)rl.rlim_cur, (uint64_t)s->workers, s->nlisteners);
	for (size_t i = 0; i < s->nlisteners; i++)
		want += (uint64_t)s->listeners[i].max_connections;
	if (room < want)
		log_warning("descriptor limit %llu holds about %llu connections, fewer than"
		    " max_connections allows (%llu): past it clients are refused; raise the"
		    " hard limit (ulimit -Hn, or LimitNOFILE= in the unit) or lower"
		    " max_connections", (unsigned long long)rl.rlim_cur,
		    (unsigned long long)room, (unsigned long long)want);
	else
		log_info("descriptor limit %llu: room for %llu connections",
		    (unsigned long long)rl.rlim_cur, (unsigned long long)room);
	return rc;
}
