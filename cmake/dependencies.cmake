# Every third-party dependency, found once. All come from Debian 12 packages
# (scripts/install-deps.sh installs them).
find_package(Threads REQUIRED)
find_package(Protobuf REQUIRED)
find_package(PkgConfig REQUIRED)
pkg_check_modules(LIBUV REQUIRED IMPORTED_TARGET libuv)
find_package(RocksDB 7 CONFIG REQUIRED)
find_package(prometheus-cpp CONFIG REQUIRED)   # Debian ships no version file: no version here
find_package(GTest CONFIG REQUIRED)
find_package(benchmark CONFIG REQUIRED)
find_package(CLI11 CONFIG REQUIRED)

find_path(ZOOKEEPER_INCLUDE_DIR zookeeper/zookeeper.h REQUIRED)
find_library(ZOOKEEPER_MT_LIBRARY NAMES zookeeper_mt REQUIRED)
add_library(ZooKeeper::zookeeper_mt UNKNOWN IMPORTED)
set_target_properties(ZooKeeper::zookeeper_mt PROPERTIES
  IMPORTED_LOCATION "${ZOOKEEPER_MT_LIBRARY}"
  INTERFACE_INCLUDE_DIRECTORIES "${ZOOKEEPER_INCLUDE_DIR}"
  INTERFACE_COMPILE_DEFINITIONS "THREADED"
  INTERFACE_LINK_LIBRARIES Threads::Threads)

# ---------------------------------------------------------------------------
# Optional: the NATS C client (Debian: libnats-dev), only for the peer-system
# benchmark benchmarks/jetstream_bench. Found through pkg-config (libnats.pc);
# Debian's cnats CMake config is unusable (it names libnats_static.a, which
# the package does not ship). If absent, jetstream_bench is simply not built.
pkg_check_modules(LIBNATS QUIET IMPORTED_TARGET libnats)
if(LIBNATS_FOUND)
  find_path(LIBNATS_HEADER_DIR nats/nats.h HINTS ${LIBNATS_INCLUDE_DIRS})
endif()
if(LIBNATS_FOUND AND LIBNATS_HEADER_DIR)
  set(DLOG_HAVE_LIBNATS ON)
  message(STATUS "libnats ${LIBNATS_VERSION} found: benchmarks/jetstream_bench will be built")
else()
  set(DLOG_HAVE_LIBNATS OFF)
  message(STATUS "libnats not found (apt-get install libnats-dev): benchmarks/jetstream_bench is not built")
endif()

# Compression of message batches (protocol/message_batch.cc).
pkg_check_modules(LZ4 REQUIRED IMPORTED_TARGET liblz4)
pkg_check_modules(ZSTD REQUIRED IMPORTED_TARGET libzstd)
