/*
 * cli.h - the admin API's command-line client: `portico api ...`,
 * `portico deploy`, `rollback`, `undeploy`, `env ...` and `deployments`
 * (docs/admin-api.md "CLI").
 *
 * Each invocation is one HTTP request to a node's admin listener; the JSON
 * answer is shown as a table or a one-line confirmation, or as is with
 * --json. The exit code alone tells a script what happened.
 */
#ifndef PT_CONTROL_CLI_H
#define PT_CONTROL_CLI_H

/* Runs one admin command. argv[0] is the command word ("api", "deploy",
 * "rollback", "undeploy", "env" or "deployments"); the words, arguments and
 * options that follow may come in any order (options: --server URL,
 * --token-file FILE, --json, --help and the command's own). The server is
 * --server, else $PORTICO_SERVER, else http://127.0.0.1:9901; the token is
 * the content of --token-file, else $PORTICO_TOKEN, and is never printed.
 * Writes results to stdout, messages to stderr. Returns the process exit
 * code: 0 success (also a push identical to the latest revision), 1 the
 * server refused (its problem's title, detail and errors on stderr), 2 usage
 * error (or FILE cannot be read), 3 no token, the server cannot be reached
 * or gave no complete answer, or the token was refused (401).
 * Owns nothing the caller passes; frees everything it allocates. Calls
 * curl_global_init/curl_global_cleanup itself: run it with no other thread
 * using libcurl (the `portico` command's main thread, before any node). */
int pt_cli_main(int argc, char **argv);

#endif
