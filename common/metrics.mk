# common/metrics.mk: the metrics (counters and their Prometheus text in the core, which every decision
# point counts into; the loopback HTTP listener that serves them in libftmpush, with libmicrohttpd)
common_libftmpush_core_la_SOURCES += common/ftm_metrics.h common/metrics.c
common_libftmpush_la_SOURCES += common/metrics_listener.c
