/* pq_lazy: libpq mapped on the first PostgreSQL store open, so a process on an SQLite store never loads it. */
#ifndef FTM_PQ_LAZY_H
#define FTM_PQ_LAZY_H

#include <stddef.h>
#include <libpq-fe.h>

/* Every libpq function the core calls, resolved from libpq.so.5 by ftm_pq_load(). A function missing
 * here is called directly and the core does not link libpq: the programs fail to link, which is how a
 * new call is noticed (pam_links.test checks the PAM module refers to no PQ symbol). */
#define FTM_PQ_FUNCTIONS(X) \
	X(PQclear) X(PQcmdStatus) X(PQcmdTuples) X(PQconnectdbParams) X(PQconninfoFree) X(PQconninfoParse) \
	X(PQconsumeInput) X(PQenterPipelineMode) X(PQerrorMessage) X(PQescapeIdentifier) X(PQescapeLiteral) \
	X(PQexec) X(PQexecParams) X(PQexecPrepared) X(PQexitPipelineMode) X(PQfinish) X(PQflush) \
	X(PQfreemem) X(PQgetResult) X(PQgetisnull) X(PQgetlength) X(PQgetvalue) X(PQisBusy) X(PQnfields) \
	X(PQnotifies) X(PQntuples) X(PQpipelineSync) X(PQprepare) X(PQresultErrorField) \
	X(PQresultErrorMessage) X(PQresultStatus) X(PQsendPrepare) X(PQsendQuery) X(PQsendQueryParams) \
	X(PQsendQueryPrepared) X(PQserverVersion) X(PQsetnonblocking) X(PQsocket) X(PQstatus) \
	X(PQtransactionStatus) X(PQunescapeBytea)

typedef struct ftm_pq {
#define FTM_PQ_MEMBER(f) __typeof__(f) *f;
	FTM_PQ_FUNCTIONS(FTM_PQ_MEMBER)
#undef FTM_PQ_MEMBER
} ftm_pq_t;

extern ftm_pq_t ftm_pq;

/* Loads libpq once per process (thread-safe). 0, or -1 with the reason (libpq5 not installed). */
int ftm_pq_load(char *err, size_t err_len);

#ifndef FTM_PQ_LAZY_IMPL
#define PQclear			ftm_pq.PQclear
#define PQcmdStatus		ftm_pq.PQcmdStatus
#define PQcmdTuples		ftm_pq.PQcmdTuples
#define PQconnectdbParams	ftm_pq.PQconnectdbParams
#define PQconninfoFree		ftm_pq.PQconninfoFree
#define PQconninfoParse		ftm_pq.PQconninfoParse
#define PQconsumeInput		ftm_pq.PQconsumeInput
#define PQenterPipelineMode	ftm_pq.PQenterPipelineMode
#define PQerrorMessage		ftm_pq.PQerrorMessage
#define PQescapeIdentifier	ftm_pq.PQescapeIdentifier
#define PQescapeLiteral		ftm_pq.PQescapeLiteral
#define PQexec			ftm_pq.PQexec
#define PQexecParams		ftm_pq.PQexecParams
#define PQexecPrepared		ftm_pq.PQexecPrepared
#define PQexitPipelineMode	ftm_pq.PQexitPipelineMode
#define PQfinish		ftm_pq.PQfinish
#define PQflush			ftm_pq.PQflush
#define PQfreemem		ftm_pq.PQfreemem
#define PQgetResult		ftm_pq.PQgetResult
#define PQgetisnull		ftm_pq.PQgetisnull
#define PQgetlength		ftm_pq.PQgetlength
#define PQgetvalue		ftm_pq.PQgetvalue
#define PQisBusy		ftm_pq.PQisBusy
#define PQnfields		ftm_pq.PQnfields
#define PQnotifies		ftm_pq.PQnotifies
#define PQntuples		ftm_pq.PQntuples
#define PQpipelineSync		ftm_pq.PQpipelineSync
#define PQprepare		ftm_pq.PQprepare
#define PQresultErrorField	ftm_pq.PQresultErrorField
#define PQresultErrorMessage	ftm_pq.PQresultErrorMessage
#define PQresultStatus		ftm_pq.PQresultStatus
#define PQsendPrepare		ftm_pq.PQsendPrepare
#define PQsendQuery		ftm_pq.PQsendQuery
#define PQsendQueryParams	ftm_pq.PQsendQueryParams
#define PQsendQueryPrepared	ftm_pq.PQsendQueryPrepared
#define PQserverVersion		ftm_pq.PQserverVersion
#define PQsetnonblocking	ftm_pq.PQsetnonblocking
#define PQsocket		ftm_pq.PQsocket
#define PQstatus		ftm_pq.PQstatus
#define PQtransactionStatus	ftm_pq.PQtransactionStatus
#define PQunescapeBytea		ftm_pq.PQunescapeBytea
#endif

#endif
