// Observations in HDF5: the long form of the CSV as 1-D datasets of equal length in the
// file's root group (or in /observations): time (text, ISO 8601 with offset), station,
// species (text), value (float, mg/L) and optionally flag (text). Text may be stored as
// variable- or fixed-length strings (h5py writes either), UTF-8 or ASCII.
#include <hdf5.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cmath>
#include <cstdio>
#include <cstdint>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>

#include "qingshui/core/error.h"
#include "qingshui/forecast/inputs.h"
#include "qingshui/forecast/time.h"

namespace qingshui::forecast {

namespace {

struct Handle {
  hid_t id;
  herr_t (*close)(hid_t);
  ~Handle() {
    if (id >= 0) close(id);
  }
};

// Silences HDF5's own error printing while we probe, restores it afterwards.
struct QuietHdf5 {
  H5E_auto2_t func = nullptr;
  void* data = nullptr;
  QuietHdf5() {
    H5Eget_auto2(H5E_DEFAULT, &func, &data);
    H5Eset_auto2(H5E_DEFAULT, nullptr, nullptr);
  }
  ~QuietHdf5() { H5Eset_auto2(H5E_DEFAULT, func, data); }
};

hsize_t Length(hid_t dataset, const std::string& file, const std::string& name) {
  Handle space{H5Dget_space(dataset), H5Sclose};
  if (H5Sget_simple_extent_ndims(space.id) != 1) {
    throw DataError(file + ": " + name + ": [bad-header] expected a 1-D dataset");
  }
  hsize_t n = 0;
  H5Sget_simple_extent_dims(space.id, &n, nullptr);
  // Every observation takes at least a byte of the file: a larger extent is a corrupt
  // header, not a table to allocate (found by fuzz_obs_hdf5: 2.2e18 strings asked for).
  std::error_code ec;
  const std::uintmax_t bytes = std::filesystem::file_size(file, ec);
  if (ec || n > bytes) {
    throw DataError(file + ": " + name + ": [bad-file] corrupt HDF5 file: " +
                    std::to_string(n) + " values in a file of " + std::to_string(bytes) +
                    " bytes");
  }
  // The stored data must hold n values: libhdf5 copies from a null buffer for a compact
  // dataset without data (fuzz_obs_hdf5). Variable-length text is accepted contiguous (as
  // h5py writes it) or chunked, not compact, whose string references cannot be checked.
  Handle dcpl{H5Dget_create_plist(dataset), H5Pclose};
  Handle type{H5Dget_type(dataset), H5Tclose};
  const H5D_layout_t layout = dcpl.id >= 0 ? H5Pget_layout(dcpl.id) : H5D_LAYOUT_ERROR;
  const bool vlen = H5Tis_variable_str(type.id) > 0 || H5Tget_class(type.id) == H5T_VLEN;
  const hsize_t stored = H5Dget_storage_size(dataset);
  const size_t value_size = H5Tget_size(type.id);
  if (layout == H5D_COMPACT) {
    if (vlen) {
      throw DataError(file + ": " + name + ": [bad-file] variable-length text in a compact " +
                      "dataset is not read (write it contiguous, h5py's default)");
    }
    if (n > 0 && (value_size == 0 || stored / value_size < n)) {
      throw DataError(file + ": " + name + ": [bad-file] corrupt HDF5 file: " +
                      std::to_string(n) + " values but " + std::to_string(stored) +
                      " bytes stored");
    }
  } else if (layout == H5D_CONTIGUOUS && !vlen && H5Dget_offset(dataset) != HADDR_UNDEF) {
    if (n > 0 && (value_size == 0 || stored / value_size < n || stored > bytes ||
                  H5Dget_offset(dataset) > bytes - stored)) {
      throw DataError(file + ": " + name + ": [bad-file] corrupt HDF5 file: " +
                      std::to_string(n) + " values do not fit the data stored in the file");
    }
  } else if (layout != H5D_CONTIGUOUS && layout != H5D_CHUNKED) {
    throw DataError(file + ": " + name + ": [bad-file] unsupported HDF5 dataset layout");
  }
  return n;
}

std::uint64_t Little(const unsigned char* p, size_t bytes) {
  std::uint64_t v = 0;
  for (size_t k = bytes; k-- > 0;) v = (v << 8) | p[k];
  return v;
}

// Checks the variable-length string references of a contiguous dataset before HDF5 follows
// them. HDF5 1.10 (Debian 12's libhdf5) trusts the global-heap object index and size
// stored in each reference: a corrupt index reads past its heap table and crashes the
// process (found by fuzz_obs_hdf5; tests/fuzz/regressions/obs_hdf5/). Each non-null
// reference (4-byte length, collection address, 4-byte object index; HDF5 file format
// spec, "Global Heap" and "Disk Format: Variable-length data") must name an object of that
// collection whose size equals the string's length, the collection ("GCOL", version 1)
// lying inside the file. Chunked and compact datasets are left to HDF5 (h5py writes
// contiguous datasets unless asked to chunk or compress).
void CheckVlenReferences(hid_t file, hid_t dataset, hsize_t n, const std::string& path,
                         const std::string& name) {
  Handle dcpl{H5Dget_create_plist(dataset), H5Pclose};
  if (dcpl.id < 0 || H5Pget_layout(dcpl.id) != H5D_CONTIGUOUS) return;
  if (H5Pget_external_count(dcpl.id) != 0) return;  // raw data in another file
  const haddr_t offset = H5Dget_offset(dataset);  // absolute (base address included)
  if (offset == HADDR_UNDEF) return;  // never written: HDF5 returns the fill value (empty)
  Handle fcpl{H5Fget_create_plist(file), H5Pclose};
  size_t sizeof_addr = 8, sizeof_size = 8;
  if (fcpl.id < 0 || H5Pget_sizes(fcpl.id, &sizeof_addr, &sizeof_size) < 0 || sizeof_addr > 8 ||
      sizeof_size > 8) {
    throw DataError(path + ": " + name + ": [bad-file] unreadable HDF5 file sizes");
  }
  auto corrupt = [&](hsize_t i, const std::string& what) {
    return DataError(path + ": " + name + "[" + std::to_string(i) + "]: [bad-file] corrupt HDF5 " +
                     "file: " + what);
  };
  std::ifstream in(path, std::ios::binary);
  in.seekg(0, std::ios::end);
  const std::uint64_t file_size = static_cast<std::uint64_t>(in.tellg());
  // Heap addresses are relative to the base address (the superblock): after a user block.
  std::uint64_t base = 0;
  if (hsize_t userblock = 0; H5Pget_userblock(fcpl.id, &userblock) >= 0) base = userblock;
  const size_t element = 4 + sizeof_addr + 4;
  if (n > file_size / element + 1 || offset > file_size || offset + n * element > file_size) {
    throw corrupt(0, "the string references lie past the end of the file");
  }
  std::vector<unsigned char> raw(n * element);
  in.seekg(static_cast<std::streamoff>(offset));
  in.read(reinterpret_cast<char*>(raw.data()), static_cast<std::streamsize>(raw.size()));
  if (!in) throw corrupt(0, "cannot read the string references");
  std::map<std::uint64_t, std::map<std::uint64_t, std::uint64_t>> collections;  // addr -> idx -> size
  auto collection = [&](hsize_t i, std::uint64_t addr) -> const std::map<std::uint64_t, std::uint64_t>& {
    auto it = collections.find(addr);
    if (it != collections.end()) return it->second;
    const std::uint64_t header = 8 + sizeof_size;
    if (addr > file_size || base + addr + header > file_size) throw corrupt(i, "heap address past the end");
    std::vector<unsigned char> head(header);
    in.seekg(static_cast<std::streamoff>(base + addr));
    in.read(reinterpret_cast<char*>(head.data()), static_cast<std::streamsize>(header));
    if (!in || std::memcmp(head.data(), "GCOL", 4) != 0 || head[4] != 1) {
      throw corrupt(i, "no global heap collection at the address a string names");
    }
    const std::uint64_t size = Little(head.data() + 8, sizeof_size);
    if (size < header || size > file_size || base + addr + size > file_size) {
      throw corrupt(i, "global heap collection size out of range");
    }
    std::vector<unsigned char> body(size);
    in.seekg(static_cast<std::streamoff>(base + addr));
    in.read(reinterpret_cast<char*>(body.data()), static_cast<std::streamsize>(size));
    if (!in) throw corrupt(i, "cannot read a global heap collection");
    // The walk libhdf5 makes when it loads the collection (H5HG__cache_heap_deserialize):
    // an object (index > 0) takes its header plus its size rounded up to 8 bytes; free
    // space (index 0) takes its size, header included. A free-space block of size 0 makes
    // libhdf5 loop forever, one that runs past the end sends it reading anywhere (both
    // found by fuzz_obs_hdf5).
    std::map<std::uint64_t, std::uint64_t> objects;
    const std::uint64_t object_header = 8 + sizeof_size;
    for (std::uint64_t at = header; at + object_header <= size;) {
      const std::uint64_t index = Little(body.data() + at, 2);
      const std::uint64_t length = Little(body.data() + at + 8, sizeof_size);
      std::uint64_t need = length;
      if (index > 0) {
        if (length > size - at - object_header) throw corrupt(i, "global heap object overruns its collection");
        objects[index] = length;
        need = object_header + ((length + 7) / 8) * 8;
      } else if (length == 0) {
        throw corrupt(i, "empty free-space block in a global heap collection");
      }
      // libhdf5 adds `need` to a pointer without checking it against the collection's end.
      if (need > size - at) throw corrupt(i, "global heap free space overruns its collection");
      at += need;
    }
    return collections.emplace(addr, std::move(objects)).first->second;
  };
  for (hsize_t i = 0; i < n; ++i) {
    const unsigned char* e = raw.data() + i * element;
    const std::uint64_t length = Little(e, 4);
    const std::uint64_t addr = Little(e + 4, sizeof_addr);
    const std::uint64_t index = Little(e + 4 + sizeof_addr, 4);
    if (addr == 0) continue;  // a null string
    const auto& objects = collection(i, addr);
    auto it = objects.find(index);
    if (it == objects.end()) throw corrupt(i, "a string names a missing global heap object");
    if (it->second != length) throw corrupt(i, "a string's length disagrees with its heap object");
  }
}

// The superblock's base address must be where the superblock is. libhdf5 1.10 moves the
// base to the superblock when they differ and shrinks its end-of-file address by the
// difference, after which it reads heap objects past the buffers it allocated for them
// (heap-buffer-overflow found by fuzz_obs_hdf5; HDF5 file format spec, "Superblock").
void CheckSuperblock(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  in.seekg(0, std::ios::end);
  const std::uint64_t size = static_cast<std::uint64_t>(in.tellg());
  static const unsigned char kSignature[8] = {0x89, 'H', 'D', 'F', '\r', '\n', 0x1a, '\n'};
  for (std::uint64_t at = 0; at + 48 <= size; at = at == 0 ? 512 : 2 * at) {
    unsigned char b[48];
    in.seekg(static_cast<std::streamoff>(at));
    if (!in.read(reinterpret_cast<char*>(b), sizeof b)) return;
    if (std::memcmp(b, kSignature, 8) != 0) continue;
    const int version = b[8];
    size_t field = 0, sizeof_addr = 0;
    if (version == 0 || version == 1) {
      field = version == 0 ? 24 : 28;
      sizeof_addr = b[13];
    } else if (version == 2 || version == 3) {
      field = 12;
      sizeof_addr = b[9];
    } else {
      return;  // unknown version: libhdf5 refuses it
    }
    if (sizeof_addr == 0 || sizeof_addr > 8 || field + sizeof_addr > sizeof b) return;
    const std::uint64_t base = Little(b + field, sizeof_addr);
    if (base != at) {
      throw DataError(path + ": [bad-file] corrupt HDF5 file: superblock at byte " +
                      std::to_string(at) + " gives base address " + std::to_string(base));
    }
    return;
  }
}

std::vector<std::string> ReadStrings(hid_t group, const std::string& name,
                                     const std::string& file) {
  Handle ds{H5Dopen2(group, name.c_str(), H5P_DEFAULT), H5Dclose};
  if (ds.id < 0) throw DataError(file + ": [bad-header] missing dataset '" + name + "'");
  const hsize_t n = Length(ds.id, file, name);
  Handle type{H5Dget_type(ds.id), H5Tclose};
  if (H5Tget_class(type.id) != H5T_STRING) {
    throw DataError(file + ": " + name + ": [bad-header] expected text (strings)");
  }
  std::vector<std::string> out(n);
  if (n == 0) return out;
  if (H5Tis_variable_str(type.id) > 0) {
    Handle owner{H5Iget_file_id(ds.id), H5Fclose};
    CheckVlenReferences(owner.id, ds.id, n, file, name);
    Handle mem{H5Tcopy(H5T_C_S1), H5Tclose};
    H5Tset_size(mem.id, H5T_VARIABLE);
    H5Tset_cset(mem.id, H5Tget_cset(type.id));
    std::vector<char*> ptrs(n, nullptr);
    Handle space{H5Dget_space(ds.id), H5Sclose};
    if (H5Dread(ds.id, mem.id, H5S_ALL, H5S_ALL, H5P_DEFAULT, ptrs.data()) < 0) {
      // A read that fails half-way may have allocated some strings already.
      H5Dvlen_reclaim(mem.id, space.id, H5P_DEFAULT, ptrs.data());
      throw DataError(file + ": " + name + ": cannot read");
    }
    for (hsize_t i = 0; i < n; ++i) out[i] = ptrs[i] ? ptrs[i] : "";
    H5Dvlen_reclaim(mem.id, space.id, H5P_DEFAULT, ptrs.data());
  } else {
    const size_t size = H5Tget_size(type.id);
    // n fixed-length strings of `size` bytes: bounded by what the file could hold even
    // compressed 1000-fold (a corrupt type size asked for 8.5 GB; fuzz_obs_hdf5).
    std::error_code ec;
    const std::uintmax_t bytes = std::filesystem::file_size(file, ec);
    if (size == 0 || ec || size > 1000 * (bytes + 1) / n) {
      throw DataError(file + ": " + name + ": [bad-file] corrupt HDF5 file: " + std::to_string(n) +
                      " strings of " + std::to_string(size) + " bytes in a file of " +
                      std::to_string(bytes) + " bytes");
    }
    std::vector<char> buffer(n * size);
    if (H5Dread(ds.id, type.id, H5S_ALL, H5S_ALL, H5P_DEFAULT, buffer.data()) < 0) {
      throw DataError(file + ": " + name + ": cannot read");
    }
    for (hsize_t i = 0; i < n; ++i) {
      const char* p = buffer.data() + i * size;
      out[i] = std::string(p, strnlen(p, size));
    }
  }
  return out;
}

std::vector<double> ReadNumbers(hid_t group, const std::string& name, const std::string& file) {
  Handle ds{H5Dopen2(group, name.c_str(), H5P_DEFAULT), H5Dclose};
  if (ds.id < 0) throw DataError(file + ": [bad-header] missing dataset '" + name + "'");
  const hsize_t n = Length(ds.id, file, name);
  Handle type{H5Dget_type(ds.id), H5Tclose};
  const H5T_class_t c = H5Tget_class(type.id);
  if (c != H5T_FLOAT && c != H5T_INTEGER) {
    throw DataError(file + ": " + name + ": [bad-header] expected numbers");
  }
  std::vector<double> out(n);
  if (n && H5Dread(ds.id, H5T_NATIVE_DOUBLE, H5S_ALL, H5S_ALL, H5P_DEFAULT, out.data()) < 0) {
    throw DataError(file + ": " + name + ": cannot read");
  }
  return out;
}

}  // namespace

namespace {

std::vector<Observation> ReadInProcess(const std::string& path) {
  CheckSuperblock(path);
  QuietHdf5 quiet;
  Handle file{H5Fopen(path.c_str(), H5F_ACC_RDONLY, H5P_DEFAULT), H5Fclose};
  if (file.id < 0) throw ConfigError(path + ": cannot open as HDF5");
  hid_t where = file.id;
  Handle group{-1, H5Gclose};
  if (H5Lexists(file.id, "observations", H5P_DEFAULT) > 0) {
    group.id = H5Gopen2(file.id, "observations", H5P_DEFAULT);
    where = group.id;
  }
  const auto time = ReadStrings(where, "time", path);
  const auto station = ReadStrings(where, "station", path);
  const auto species = ReadStrings(where, "species", path);
  const auto value = ReadNumbers(where, "value", path);
  std::vector<std::string> flag;
  if (H5Lexists(where, "flag", H5P_DEFAULT) > 0) flag = ReadStrings(where, "flag", path);
  const size_t n = time.size();
  if (station.size() != n || species.size() != n || value.size() != n ||
      (!flag.empty() && flag.size() != n)) {
    throw DataError(path +
                    ": [bad-header] time, station, species, value (and flag) must have the "
                    "same length");
  }
  std::vector<Observation> out(n);
  for (size_t i = 0; i < n; ++i) {
    Observation& o = out[i];
    o.where = path + ":[" + std::to_string(i) + "]";
    std::string error;
    if (!ParseIsoTime(time[i], &o.time_utc_s, &error)) {
      throw DataError(path + ": time[" + std::to_string(i) + "]: [bad-time] " + error);
    }
    o.station = station[i];
    o.species = species[i];
    o.value_mg_l = value[i];
    if (!flag.empty()) o.flag = flag[i];
    if (std::isnan(o.value_mg_l) && o.flag.empty()) o.flag = "missing";
  }
  return out;
}

}  // namespace

// libhdf5 1.10 is not safe on corrupt files: the checks above stop what fuzz_obs_hdf5 found
// in our calls (bad heap references, free space, superblock base, extents, compact data),
// but it also crashed inside the library's own metadata reads (a local heap of absurd size
// sends it copying from a NULL malloc) before any dataset is opened. So the file is read in
// a child process: the parent gets the rows through a pipe, or the error, or - when the
// child dies of a signal - a DataError naming the file. The child only reads and writes to
// the pipe, then _exits; HDF5 is not thread-safe, so no other thread uses it meanwhile.
namespace {

constexpr unsigned kReaderSeconds = 60;

void Put(std::string* out, const void* p, size_t n) { out->append(static_cast<const char*>(p), n); }
void PutText(std::string* out, const std::string& t) {
  const std::uint64_t n = t.size();
  Put(out, &n, sizeof n);
  out->append(t);
}

class Reader {
 public:
  explicit Reader(const std::string& s) : s_(s) {}
  template <typename T>
  T Get() {
    T v{};
    Need(sizeof v);
    std::memcpy(&v, s_.data() + at_, sizeof v);
    at_ += sizeof v;
    return v;
  }
  std::string Text() {
    const auto n = Get<std::uint64_t>();
    Need(n);
    std::string t = s_.substr(at_, n);
    at_ += n;
    return t;
  }

 private:
  void Need(std::uint64_t n) {
    if (n > s_.size() - at_) throw Error("HDF5 reader: truncated reply from the child process");
  }
  const std::string& s_;
  size_t at_ = 0;
};

}  // namespace

std::vector<Observation> ReadObservationsHdf5(const std::string& path) {
  int fds[2];
  if (::pipe(fds) != 0) return ReadInProcess(path);  // no isolation available: read here
  std::fflush(nullptr);
  const pid_t pid = ::fork();
  if (pid < 0) {
    ::close(fds[0]);
    ::close(fds[1]);
    return ReadInProcess(path);
  }
  if (pid == 0) {  // child
    ::close(fds[0]);
    ::alarm(kReaderSeconds);  // libhdf5 can also loop forever on a corrupt file
    std::string out;
    char kind = 'O';
    try {
      const std::vector<Observation> rows = ReadInProcess(path);
      const std::uint64_t n = rows.size();
      Put(&out, &kind, 1);
      Put(&out, &n, sizeof n);
      for (const Observation& o : rows) {
        Put(&out, &o.time_utc_s, sizeof o.time_utc_s);
        Put(&out, &o.value_mg_l, sizeof o.value_mg_l);
        PutText(&out, o.station);
        PutText(&out, o.species);
        PutText(&out, o.flag);
        PutText(&out, o.where);
      }
    } catch (const ConfigError& e) {
      out.clear();
      kind = 'C';
      Put(&out, &kind, 1);
      PutText(&out, e.what());
    } catch (const std::exception& e) {
      out.clear();
      kind = 'D';
      Put(&out, &kind, 1);
      PutText(&out, e.what());
    }
    for (size_t done = 0; done < out.size();) {
      const ssize_t w = ::write(fds[1], out.data() + done, out.size() - done);
      if (w < 0 && errno == EINTR) continue;
      if (w <= 0) ::_exit(3);
      done += static_cast<size_t>(w);
    }
    ::_exit(0);
  }
  ::close(fds[1]);
  std::string reply;
  char buffer[65536];
  for (;;) {
    const ssize_t r = ::read(fds[0], buffer, sizeof buffer);
    if (r < 0 && errno == EINTR) continue;
    if (r <= 0) break;
    reply.append(buffer, static_cast<size_t>(r));
  }
  ::close(fds[0]);
  int status = 0;
  while (::waitpid(pid, &status, 0) < 0 && errno == EINTR) {
  }
  if (WIFSIGNALED(status) && WTERMSIG(status) == SIGALRM) {
    throw DataError(path + ": [bad-file] corrupt HDF5 file: libhdf5 was still reading it after " +
                    std::to_string(kReaderSeconds) + " s");
  }
  if (WIFSIGNALED(status)) {
    throw DataError(path + ": [bad-file] corrupt HDF5 file: reading it crashed libhdf5 (signal " +
                    std::to_string(WTERMSIG(status)) + ")");
  }
  if (!WIFEXITED(status) || WEXITSTATUS(status) != 0 || reply.empty()) {
    throw DataError(path + ": [bad-file] the HDF5 reader process failed");
  }
  Reader in(reply);
  const char kind = in.Get<char>();
  if (kind == 'C') throw ConfigError(in.Text());
  if (kind == 'D') throw DataError(in.Text());
  const auto n = in.Get<std::uint64_t>();
  if (kind != 'O' || n > reply.size()) throw Error("HDF5 reader: malformed reply from the child process");
  std::vector<Observation> rows(n);
  for (Observation& o : rows) {
    o.time_utc_s = in.Get<std::int64_t>();
    o.value_mg_l = in.Get<double>();
    o.station = in.Text();
    o.species = in.Text();
    o.flag = in.Text();
    o.where = in.Text();
  }
  return rows;
}

}  // namespace qingshui::forecast
