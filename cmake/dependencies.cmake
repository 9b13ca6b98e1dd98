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
