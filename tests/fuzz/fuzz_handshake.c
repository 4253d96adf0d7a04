/*
 * fuzz_handshake: arbitrary records to a server SSL made as a listener
 * makes it: the configuration is read by settings_load() (five listeners:
 * TLS 1.2 and 1.3 with stateless tickets and the session cache; TLS 1.2
 * only, requiring a client certificate; TLS 1.3 only, asking for one;
 * its own cipher lists and ALPN; certificates chosen by SNI with
 * sni_strict and alpn_required), then server.c's steps: ticket_keys_new() of the
 * seed file, service_new() of each listener, SSL_new() of its context,
 * which holds the ticket key callbacks, the session cache, the
 * servername, client hello and ALPN callbacks and client verification.  conn.c's certificate
 * callback (full_handshake_rate) is not installed: it needs a connection
 * in a worker's event loop, and without a rate it admits every handshake.
 *
 * Input: one byte choosing the listener, then chunks of a 2-byte length
 * and that many bytes, each appended to the memory BIO the server reads
 * before it is run again, so that a ClientHello may come in pieces and
 * records after it reach the later states.  What the server writes is
 * read and dropped.  Any crash, leak or sanitizer report is a finding;
 * the only answer checked is that a server that says it finished its
 * handshake also has a version and a cipher.
 */
#include <stdint.h>
#include <string.h>

#include <openssl/err.h>
#include <openssl/ssl.h>

#include "fuzzlib.h"
#include "../../src/config.h"
#include "../../src/log.h"
#include "../../src/service.h"
#include "../../src/ticket_keys.h"

#define LISTENERS 5

static const char conf[] =
    "log_level = \"error\";\n"
    "tickets = { seed_file = \"@DIR@/ticket.seed\"; };\n"
    "listeners = (\n"
    "  { name = \"mqtt\"; listen = \"127.0.0.1:8883\"; backend = \"127.0.0.1:1883\";\n"
    "    cert = \"@DIR@/server.pem\"; key = \"@DIR@/server.key\"; },\n"
    "  { name = \"mtls12\"; listen = \"127.0.0.1:8884\"; backend = \"127.0.0.1:1883\";\n"
    "    cert = \"@DIR@/server.pem\"; key = \"@DIR@/server.key\";\n"
    "    protocols = [ \"TLSv1.2\" ]; client_ca = \"@DIR@/ca.pem\";\n"
    "    verify_client = \"require\"; },\n"
    "  { name = \"opt13\"; listen = \"127.0.0.1:8885\"; backend = \"127.0.0.1:1883\";\n"
    "    cert = \"@DIR@/server.pem\"; key = \"@DIR@/server.key\";\n"
    "    protocols = [ \"TLSv1.3\" ]; client_ca = \"@DIR@/ca.pem\";\n"
    "    verify_client = \"optional\"; },\n"
    "  { name = \"ciphers\"; listen = \"127.0.0.1:8886\"; backend = \"127.0.0.1:1883\";\n"
    "    cert = \"@DIR@/server.pem\"; key = \"@DIR@/server.key\";\n"
    "    ciphers = \"ECDHE-ECDSA-CHACHA20-POLY1305\";\n"
    "    ciphersuites = \"TLS_CHACHA20_POLY1305_SHA256\"; alpn = [ \"mqtt\" ]; },\n"
    "  { name = \"sni\"; listen = \"127.0.0.1:8887\"; backend = \"127.0.0.1:1883\";\n"
    "    certificates = (\n"
    "      { cert = \"@DIR@/server.pem\"; key = \"@DIR@/server.key\"; },\n"
    "      { cert = \"@DIR@/server.pem\"; key = \"@DIR@/server.key\";\n"
    "        names = [ \"a.example\", \"*.b.example\" ]; } );\n"
    "    sni_strict = true; alpn = [ \"mqtt\", \"http/1.1\" ]; alpn_required = true; }\n"
    ");\n";

static const char seed[] = "a seed of the fuzzing run, 32 b\n";

static struct settings *settings;
static struct ticket_keys *keys;
static struct service *services[LISTENERS];

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void
cleanup(void)
{
	for (size_t i = 0; i < LISTENERS; i++)
		service_unref(services[i]);
	ticket_keys_unref(keys);
	settings_free(settings);
}

int
LLVMFuzzerInitialize(int *argc, char ***argv)
{
	struct config_errors errs = { 0 };
	const char *path;

	fz_setup(1);
	log_set_level(LOG_LEVEL_ERROR);
	fz_write_conf("ticket.seed", (const uint8_t *)seed, sizeof(seed) - 1, 0);
	path = fz_write_conf("tlsproxy.conf", (const uint8_t *)conf, sizeof(conf) - 1, 1);
	if ((settings = settings_load(path, &errs)) == NULL)
		fz_fail("settings_load: %s", errs.count > 0 ? errs.lines[0] : "?");
	if (settings->nlisteners != LISTENERS)
		fz_fail("%zu listeners, not %d", settings->nlisteners, LISTENERS);
	if ((keys = ticket_keys_new(&settings->tickets)) == NULL)
		fz_fail("ticket_keys_new");
	for (size_t i = 0; i < LISTENERS; i++)
		if ((services[i] = service_new(settings, &settings->listeners[i], keys,
		    &errs)) == NULL)
			fz_fail("service_new: %s", errs.count > 0 ? errs.lines[0] : "?");
	atexit(cleanup);
	return 0;
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct fz_in in = { data, size };
	SSL *ssl = SSL_new(services[fz_u8(&in) % LISTENERS]->ctx);
	BIO *rbio = BIO_new(BIO_s_mem()), *wbio = BIO_new(BIO_s_mem());
	unsigned char sink[4096];
	int rc = 0;

	if (ssl == NULL || rbio == NULL || wbio == NULL)
		fz_fail("out of memory");
	BIO_set_mem_eof_return(rbio, -1);	/* empty: "try again", as a socket */
	SSL_set_bio(ssl, rbio, wbio);
	SSL_set_accept_state(ssl);
	while (in.left > 0) {
		size_t n;
		const uint8_t *chunk = fz_bytes(&in, 0xFFFF, &n);

		if (n > 0 && BIO_write(rbio, chunk, (int)n) != (int)n)
			fz_fail("BIO_write");
		rc = SSL_do_handshake(ssl);
		while (BIO_read(wbio, sink, sizeof(sink)) > 0)
			continue;
		if (rc == 1) {
			/* Past the handshake: whatever follows is application data. */
			while (SSL_read(ssl, sink, sizeof(sink)) > 0)
				continue;
		} else if (SSL_get_error(ssl, rc) != SSL_ERROR_WANT_READ)
			break;
	}
	if (SSL_is_init_finished(ssl) &&
	    (SSL_get_current_cipher(ssl) == NULL || SSL_version(ssl) < TLS1_2_VERSION))
		fz_fail("a finished handshake with no cipher, or below TLS 1.2");
	ERR_clear_error();
	SSL_free(ssl);
	return 0;
}
