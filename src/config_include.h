/*
 * config_include: the @include directives of a configuration file, read
 * before libconfig reads the file, so that an @include of something other
 * than a regular file is a configuration error at its line.  libconfig
 * opens whatever the directive names and reads it with flex: a directory
 * makes flex call exit() ("input in flex scanner failed"), which would end
 * the daemon on a reload, and a FIFO blocks the read for ever.
 */
#ifndef TLSPROXY_CONFIG_INCLUDE_H
#define TLSPROXY_CONFIG_INCLUDE_H

#include "config.h"

/**
 * config_include_check(path, dir, errs): find the @include directives of
 * ${path} as libconfig's scanner does (at the start of a line, outside
 * comments and strings), and of the files they include, as deep as
 * libconfig goes.  Each names a file in ${dir} (the include directory set
 * for libconfig), or an absolute path where libconfig takes those.  For
 * each that exists and is not a regular file, add "FILE:LINE: @include:
 * "name" is a directory (or: is not a regular file) ..." to ${errs}.
 * Names that do not exist are left to libconfig, which reports them.
 * Returns 0, or -1 after adding at least one line.
 */
int config_include_check(const char *path, const char *dir, struct config_errors *errs);

#endif
