# The storage engine of a logstore node: journal (group commit), entry index
# in RocksDB, tail cache, cookie, and the file-system seam (Env) with its
# fault-injecting wrapper for durability tests.
dlog_library(NAME dlog_node_store
  SRCS
    ${CMAKE_CURRENT_LIST_DIR}/env_posix.cc
    ${CMAKE_CURRENT_LIST_DIR}/fault_injection_env.cc
    ${CMAKE_CURRENT_LIST_DIR}/journal_format.cc
    ${CMAKE_CURRENT_LIST_DIR}/journal.cc
    ${CMAKE_CURRENT_LIST_DIR}/index.cc
    ${CMAKE_CURRENT_LIST_DIR}/indexer.cc
    ${CMAKE_CURRENT_LIST_DIR}/replay.cc
    ${CMAKE_CURRENT_LIST_DIR}/reader.cc
    ${CMAKE_CURRENT_LIST_DIR}/tail_cache.cc
    ${CMAKE_CURRENT_LIST_DIR}/cookie.cc
    ${CMAKE_CURRENT_LIST_DIR}/store_impl.cc
  DEPS dlog_common dlog_protocol RocksDB::rocksdb-shared Threads::Threads)
