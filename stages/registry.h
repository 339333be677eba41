// A thread-safe map from a name (or mode) to a factory, filled with the built-in entries when it
// is first used: how sources, transforms and sinks are registered. Built-ins are added by an
// explicit function rather than static initializers in their own files, which a static link
// would drop.
#pragma once

#include <map>
#include <mutex>
#include <vector>

namespace dynamorph::stages {

template <class Key, class Factory>
class Registry {
 public:
  template <class Builtins>
  explicit Registry(Builtins&& add_builtins) {
    add_builtins(*this);
  }
  void add(Key key, Factory factory) {
    std::lock_guard lock(mutex_);
    factories_[std::move(key)] = std::move(factory);
  }
  // The factory registered under `key`; empty when there is none.
  Factory find(const Key& key) const {
    std::lock_guard lock(mutex_);
    auto it = factories_.find(key);
    return it == factories_.end() ? Factory{} : it->second;
  }
  std::vector<Key> keys() const {
    std::lock_guard lock(mutex_);
    std::vector<Key> out;
    for (const auto& [k, f] : factories_) out.push_back(k);
    return out;
  }

 private:
  mutable std::mutex mutex_;
  std::map<Key, Factory> factories_;
};

}  // namespace dynamorph::stages
