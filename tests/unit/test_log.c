/* test_log: formatting, control-character stripping, truncation and level filtering of ftm_log. */
#include "config.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdint.h>
#include <string.h>
#include <cmocka.h>

#include "ftm_log.h"

struct capture {
	int		calls;
	ftm_log_level_t	level;
	char		line[4096];
};

static void sink(void *ctx, ftm_log_level_t level, const char *line)
{
	struct capture *c = ctx;

	c->calls++;
	c->level = level;
	snprintf(c->line, sizeof(c->line), "%s", line);
}

static void formats_and_passes_the_level(void **state)
{
	struct capture c = { 0 };
	ftm_log_t log = { sink, &c, FTM_LOG_DEBUG };

	(void)state;
	ftm_log(&log, FTM_LOG_WARN, "user '%s' from %s: %d failures", "alice", "192.0.2.1", 3);
	assert_int_equal(c.calls, 1);
	assert_int_equal(c.level, FTM_LOG_WARN);
	assert_string_equal(c.line, "user 'alice' from 192.0.2.1: 3 failures");
}

static void control_characters_cannot_forge_lines(void **state)
{
	struct capture c = { 0 };
	ftm_log_t log = { sink, &c, FTM_LOG_INFO };

	(void)state;
	ftm_log(&log, FTM_LOG_INFO, "user '%s'", "bob\nftmpush[info]: accepted\r\t\x1b[31m\x7f");
	assert_string_equal(c.line, "user 'bob?ftmpush[info]: accepted???[31m?'");
	assert_null(strchr(c.line, '\n'));
}

static void long_lines_are_cut_at_1024_bytes(void **state)
{
	struct capture c = { 0 };
	ftm_log_t log = { sink, &c, FTM_LOG_INFO };
	char big[3000];

	(void)state;
	memset(big, 'x', sizeof(big) - 1);
	big[sizeof(big) - 1] = '\0';
	ftm_log(&log, FTM_LOG_ERR, "%s", big);
	assert_int_equal(strlen(c.line), 1024);
}

static void a_cut_never_leaves_half_a_utf8_character(void **state)
{
	struct capture c = { 0 };
	ftm_log_t log = { sink, &c, FTM_LOG_INFO };
	char big[1100];

	(void)state;
	memset(big, 'x', sizeof(big));
	/* a 3-byte character straddles byte 1024 */
	memcpy(big + 1022, "\xe2\x82\xac", 3);
	big[sizeof(big) - 1] = '\0';
	ftm_log(&log, FTM_LOG_ERR, "%s", big);
	assert_int_equal(strlen(c.line), 1022);
	/* one that ends exactly at 1024 stays */
	memcpy(big + 1021, "\xe2\x82\xac", 3);
	ftm_log(&log, FTM_LOG_ERR, "%s", big);
	assert_int_equal(strlen(c.line), 1024);
}

static void levels_above_max_are_dropped(void **state)
{
	struct capture c = { 0 };
	ftm_log_t log = { sink, &c, FTM_LOG_INFO };

	(void)state;
	ftm_log(&log, FTM_LOG_DEBUG, "hidden");
	assert_int_equal(c.calls, 0);
	ftm_log(&log, FTM_LOG_INFO, "shown");
	assert_int_equal(c.calls, 1);
}

static void null_log_or_sink_discards(void **state)
{
	ftm_log_t log = { NULL, NULL, FTM_LOG_DEBUG2 };

	(void)state;
	ftm_log(NULL, FTM_LOG_ERR, "nowhere %d", 1);
	ftm_log(&log, FTM_LOG_ERR, "nowhere %d", 2);
}

static void level_names(void **state)
{
	(void)state;
	assert_string_equal(ftm_log_level_name(FTM_LOG_ERR), "error");
	assert_string_equal(ftm_log_level_name(FTM_LOG_WARN), "warning");
	assert_string_equal(ftm_log_level_name(FTM_LOG_INFO), "info");
	assert_string_equal(ftm_log_level_name(FTM_LOG_DEBUG), "debug");
	assert_string_equal(ftm_log_level_name(FTM_LOG_DEBUG2), "debug2");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(formats_and_passes_the_level),
		cmocka_unit_test(control_characters_cannot_forge_lines),
		cmocka_unit_test(long_lines_are_cut_at_1024_bytes),
		cmocka_unit_test(a_cut_never_leaves_half_a_utf8_character),
		cmocka_unit_test(levels_above_max_are_dropped),
		cmocka_unit_test(null_log_or_sink_discards),
		cmocka_unit_test(level_names),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
