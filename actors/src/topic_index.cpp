#include <flowbus/actors/topic_index.hpp>

#include <algorithm>

namespace flowbus::actors {

struct topic_index::node {
  std::map<std::string, std::unique_ptr<node>, std::less<>> children; // literal tokens
  std::unique_ptr<node> star;                                         // `*`
  subscriber_list here;                                               // patterns ending at this node
  subscriber_list tail;                                               // patterns "<this node>.>"
  bool empty() const noexcept { return children.empty() && !star && here.empty() && tail.empty(); }
};

namespace {

bool insert_sorted(subscriber_list& v, subscriber_id id) {
  const auto it = std::lower_bound(v.begin(), v.end(), id);
  if (it != v.end() && *it == id) return false;
  v.insert(it, id);
  return true;
}
bool erase_sorted(subscriber_list& v, subscriber_id id) {
  const auto it = std::lower_bound(v.begin(), v.end(), id);
  if (it == v.end() || *it != id) return false;
  v.erase(it);
  return true;
}

} // namespace

topic_index::topic_index(std::size_t cache_capacity)
    : root_(std::make_unique<node>()), cache_capacity_(cache_capacity),
      empty_(std::make_shared<const subscriber_list>()) {}
topic_index::~topic_index() = default;

topic_errc topic_index::subscribe(std::string_view pattern, subscriber_id id) {
  if (topic_errc e = validate_pattern(pattern); e != topic_errc::ok) return e;
  bool added;
  if (pattern.find_first_of("*>") == std::string_view::npos) {
    added = insert_sorted(exact_[std::string(pattern)], id);
  } else {
    node* n = root_.get();
    subscriber_list* list = nullptr;
    for_each_token(pattern, [&](std::string_view tok, bool) {
      if (tok == ">") {
        list = &n->tail;
        return false;
      }
      std::unique_ptr<node>* next;
      if (tok == "*") {
        next = &n->star;
      } else {
        auto it = n->children.find(tok);
        if (it == n->children.end()) it = n->children.emplace(std::string(tok), nullptr).first;
        next = &it->second;
      }
      if (!*next) *next = std::make_unique<node>();
      n = next->get();
      return true;
    });
    added = insert_sorted(list ? *list : n->here, id);
  }
  if (added) {
    by_subscriber_[id].emplace(pattern);
    ++count_;
    changed();
  }
  return topic_errc::ok;
}

bool topic_index::erase_entry(std::string_view pattern, subscriber_id id) {
  bool removed = false;
  if (pattern.find_first_of("*>") == std::string_view::npos) {
    scratch_.assign(pattern);
    if (auto it = exact_.find(scratch_); it != exact_.end()) {
      removed = erase_sorted(it->second, id);
      if (it->second.empty()) exact_.erase(it);
    }
    return removed;
  }
  // walk down, remembering the path so emptied nodes can be pruned (bounded memory under churn)
  std::vector<std::pair<node*, std::string_view>> path;
  node* n = root_.get();
  bool found = true, gt = false;
  for_each_token(pattern, [&](std::string_view tok, bool) {
    if (tok == ">") {
      gt = true;
      return false;
    }
    node* next = nullptr;
    if (tok == "*")
      next = n->star.get();
    else if (auto it = n->children.find(tok); it != n->children.end())
      next = it->second.get();
    if (!next) {
      found = false;
      return false;
    }
    path.emplace_back(n, tok);
    n = next;
    return true;
  });
  if (found) removed = erase_sorted(gt ? n->tail : n->here, id);
  for (auto it = path.rbegin(); removed && it != path.rend(); ++it) {
    auto [parent, tok] = *it;
    node* child = tok == "*" ? parent->star.get() : parent->children.find(tok)->second.get();
    if (!child->empty()) break;
    if (tok == "*")
      parent->star.reset();
    else
      parent->children.erase(parent->children.find(tok));
  }
  return removed;
}

bool topic_index::unsubscribe(std::string_view pattern, subscriber_id id) {
  if (validate_pattern(pattern) != topic_errc::ok) return false;
  const auto mine = by_subscriber_.find(id);
  if (mine == by_subscriber_.end()) return false;
  const auto entry = mine->second.find(std::string(pattern));
  if (entry == mine->second.end()) return false;
  erase_entry(pattern, id);
  mine->second.erase(entry);
  if (mine->second.empty()) by_subscriber_.erase(mine);
  --count_;
  changed();
  return true;
}

std::vector<std::string> topic_index::patterns_of(subscriber_id id) const {
  std::vector<std::string> out;
  if (auto it = by_subscriber_.find(id); it != by_subscriber_.end()) out.assign(it->second.begin(), it->second.end());
  std::sort(out.begin(), out.end());
  return out;
}

std::size_t topic_index::remove_subscriber(subscriber_id id) {
  const auto it = by_subscriber_.find(id);
  if (it == by_subscriber_.end()) return 0;
  const std::size_t n = it->second.size();
  for (const std::string& p : it->second)
    erase_entry(p, id);
  by_subscriber_.erase(it);
  count_ -= n;
  changed();
  return n;
}

void topic_index::collect(std::string_view topic, match_scratch& s, subscriber_list& out) const {
  out.clear();
  s.key.assign(topic);
  if (auto it = exact_.find(s.key); it != exact_.end()) out = it->second;
  s.tokens.clear();
  for_each_token(topic, [&](std::string_view tok, bool) {
    s.tokens.push_back(tok);
    return true;
  });
  s.todo.clear(); // trie walk: (node, token index) pairs still to visit
  s.todo.emplace_back(root_.get(), 0);
  while (!s.todo.empty()) {
    const auto [vn, i] = s.todo.back();
    const node* n = static_cast<const node*>(vn);
    s.todo.pop_back();
    if (i == s.tokens.size()) {
      out.insert(out.end(), n->here.begin(), n->here.end());
      continue;
    }
    out.insert(out.end(), n->tail.begin(), n->tail.end()); // `>` takes the remaining tokens (>= 1)
    if (auto it = n->children.find(s.tokens[i]); it != n->children.end()) s.todo.emplace_back(it->second.get(), i + 1);
    if (n->star) s.todo.emplace_back(n->star.get(), i + 1);
  }
  std::sort(out.begin(), out.end());
  out.erase(std::unique(out.begin(), out.end()), out.end()); // overlapping patterns: once each
}

std::shared_ptr<const subscriber_list> topic_index::compute(const std::string& topic) {
  collect(topic, scratch_match_, out_scratch_);
  if (out_scratch_.empty()) return empty_;
  return std::make_shared<const subscriber_list>(out_scratch_);
}

std::shared_ptr<const subscriber_list> topic_index::match(std::string_view topic) {
  if (validate_topic(topic) != topic_errc::ok) return empty_;
  scratch_.assign(topic);
  if (auto it = cache_.find(scratch_); it != cache_.end()) {
    ++hits_;
    return it->second;
  }
  ++misses_;
  auto result = compute(scratch_);
  if (cache_capacity_ > 0) {
    if (cache_.size() >= cache_capacity_) { // bounded: drop an arbitrary eighth (NATS prunes alike)
      std::size_t drop = cache_capacity_ / 8 + 1;
      for (auto it = cache_.begin(); it != cache_.end() && drop > 0; --drop)
        it = cache_.erase(it);
    }
    cache_.emplace(scratch_, result);
  }
  return result;
}

std::size_t topic_index::trie_nodes() const noexcept {
  std::size_t n = 0;
  std::vector<const node*> todo{root_.get()};
  while (!todo.empty()) {
    const node* x = todo.back();
    todo.pop_back();
    ++n;
    for (const auto& c : x->children)
      todo.push_back(c.second.get());
    if (x->star) todo.push_back(x->star.get());
  }
  return n;
}

} // namespace flowbus::actors
