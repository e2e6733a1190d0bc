/*
 * generate.h - `portico generate`: write a service API definition (YAML)
 * from the tables of a SQLite, PostgreSQL or MariaDB/MySQL database
 * (docs/generate.md).
 */
#ifndef PT_CONTROL_GENERATE_H
#define PT_CONTROL_GENERATE_H

/* Runs `portico generate` with the arguments that follow the subcommand
 * (argv[0] is "generate"; getopt-style options after it). Writes the
 * definition to stdout or to the file of -o, messages to stderr (never a
 * password). Returns the process exit code: 0 on success, 1 when the
 * database cannot be read or a name given is wrong, 2 on a usage error.
 * Owns nothing the caller passes; frees everything it allocates. */
int pt_generate_main(int argc, char **argv);

#endif
