/* ftm_mail: sending one message through SMTP (libcurl): smtp:// with STARTTLS, or smtps://. */
#ifndef FTM_MAIL_H
#define FTM_MAIL_H

#include <stddef.h>
#include "ftm_config.h"

/* Send `message` (complete RFC 5322 text: headers, blank line, body; CRLF line ends) from smtp->from
 * to `to`. TLS is required (STARTTLS on smtp://, implicit on smtps://) unless smtp->starttls is off;
 * the user name and password come from smtp->credentials (refused unless 0600). Returns 0, or -1
 * with err naming the server, what failed and the server's last reply ("535 5.7.8 ..."). The
 * credentials never reach err or a log. */
int ftm_mail_send(const ftm_smtp_config_t *smtp, const char *to, const char *message, char *err, size_t err_len);

#endif
