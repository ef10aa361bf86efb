//! What the core needs from the host: a shared key-value store with compare-and-swap
//! (proxy-wasm shared data, shared by every worker of the VM). The time comes in as arguments.
//! The proxy-wasm shell implements them over its shared data, the native shell over a
//! [`process::ProcessStore`]; tests use [`memory`].

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StoreError {
    /// Another writer changed the value since it was read.
    CasMismatch,
    Unavailable,
}

pub trait SharedStore {
    /// The value and its CAS token, or `None` when the key does not exist.
    fn get(&self, key: &str) -> Option<(Vec<u8>, u32)>;
    /// Writes `value` if `cas` still matches (`None`: unconditionally).
    fn put(&self, key: &str, value: &[u8], cas: Option<u32>) -> Result<(), StoreError>;
}

/// Read-modify-write with CAS retry: `update` sees the current value (`None` if absent) and
/// returns the new one, or an error to abort without writing.
pub fn update<E>(
    store: &dyn SharedStore,
    key: &str,
    mut update: impl FnMut(Option<&[u8]>) -> Result<Vec<u8>, E>,
) -> Result<Result<(), E>, StoreError> {
    const ATTEMPTS: usize = 100;
    for _ in 0..ATTEMPTS {
        let current = store.get(key);
        let next = match update(current.as_ref().map(|(v, _)| v.as_slice())) {
            Ok(next) => next,
            Err(e) => return Ok(Err(e)),
        };
        match store.put(key, &next, current.as_ref().map(|(_, cas)| *cas)) {
            Ok(()) => return Ok(Ok(())),
            Err(StoreError::CasMismatch) => continue,
            Err(e) => return Err(e),
        }
    }
    Err(StoreError::CasMismatch)
}

/// One store for the whole process: a native Envoy module is loaded once per process, so all
/// workers share its memory, and a lock plus CAS tokens give the semantics of proxy-wasm shared
/// data (a write with a stale token fails; writing a key that does not exist always succeeds).
#[cfg(not(target_arch = "wasm32"))]
pub mod process {
    use super::{SharedStore, StoreError};
    use std::collections::HashMap;
    use std::sync::{PoisonError, RwLock};

    #[derive(Default)]
    struct Entries {
        values: HashMap<String, (Vec<u8>, u32)>,
        last_cas: u32,
    }

    #[derive(Default)]
    pub struct ProcessStore {
        entries: RwLock<Entries>,
    }

    impl SharedStore for ProcessStore {
        fn get(&self, key: &str) -> Option<(Vec<u8>, u32)> {
            // Nothing panics while holding the lock, so a poisoned one still holds whole entries.
            self.entries.read().unwrap_or_else(PoisonError::into_inner).values.get(key).cloned()
        }

        fn put(&self, key: &str, value: &[u8], cas: Option<u32>) -> Result<(), StoreError> {
            let mut entries = self.entries.write().unwrap_or_else(PoisonError::into_inner);
            if let (Some(cas), Some((_, current))) = (cas, entries.values.get(key))
                && cas != *current
            {
                return Err(StoreError::CasMismatch);
            }
            entries.last_cas = entries.last_cas.wrapping_add(1);
            let token = entries.last_cas;
            entries.values.insert(key.to_owned(), (value.to_vec(), token));
            Ok(())
        }
    }

    #[cfg(test)]
    mod tests {
        use super::*;
        use crate::host::update;
        use std::sync::Arc;

        #[test]
        fn a_write_with_a_stale_token_fails() {
            let store = ProcessStore::default();
            store.put("k", b"1", None).unwrap();
            let (_, seen) = store.get("k").unwrap();
            store.put("k", b"2", Some(seen)).unwrap();
            assert_eq!(store.put("k", b"3", Some(seen)), Err(StoreError::CasMismatch));
            assert_eq!(store.get("k").unwrap().0, b"2");
            assert_eq!(store.put("new", b"x", Some(seen)), Ok(()), "a key that does not exist yet is always written");
        }

        #[test]
        fn counters_updated_from_many_threads_lose_nothing() {
            let store = Arc::new(ProcessStore::default());
            let workers: Vec<_> = (0..4)
                .map(|_| {
                    let store = store.clone();
                    std::thread::spawn(move || {
                        for _ in 0..500 {
                            update::<()>(&*store, "n", |v| {
                                let n: u64 = v.map_or(0, |v| std::str::from_utf8(v).unwrap().parse().unwrap());
                                Ok((n + 1).to_string().into_bytes())
                            })
                            .unwrap()
                            .unwrap();
                        }
                    })
                })
                .collect();
            for w in workers {
                w.join().unwrap();
            }
            assert_eq!(store.get("n").unwrap().0, b"2000");
        }
    }
}

/// In-memory host for tests and benchmarks, with hooks to simulate a concurrent writer.
#[cfg(any(test, feature = "memory-host"))]
pub mod memory {
    use super::*;
    use std::cell::{Cell, RefCell};
    use std::collections::HashMap;

    type CompetingWrite = Box<dyn FnOnce(&MemoryStore)>;

    #[derive(Default)]
    pub struct MemoryStore {
        data: RefCell<HashMap<String, (Vec<u8>, u32)>>,
        next_cas: Cell<u32>,
        /// Runs once between a `get` and the following `put`: a competing worker's write.
        interleave: RefCell<Option<CompetingWrite>>,
        /// Conditional writes to this key fail, this many times, as if another worker always
        /// wrote first.
        contended: RefCell<Option<(String, usize)>>,
    }

    impl MemoryStore {
        pub fn interleave(&self, f: impl FnOnce(&MemoryStore) + 'static) {
            *self.interleave.borrow_mut() = Some(Box::new(f));
        }

        /// The next `writes` conditional writes to `key` lose their race.
        pub fn contend(&self, key: &str, writes: usize) {
            *self.contended.borrow_mut() = Some((key.to_owned(), writes));
        }

        pub fn raw(&self, key: &str) -> Option<Vec<u8>> {
            self.data.borrow().get(key).map(|(v, _)| v.clone())
        }

        pub fn keys(&self) -> Vec<String> {
            let mut k: Vec<String> = self.data.borrow().keys().cloned().collect();
            k.sort();
            k
        }
    }

    impl SharedStore for MemoryStore {
        fn get(&self, key: &str) -> Option<(Vec<u8>, u32)> {
            self.data.borrow().get(key).cloned()
        }

        fn put(&self, key: &str, value: &[u8], cas: Option<u32>) -> Result<(), StoreError> {
            let competing_writer = self.interleave.borrow_mut().take();
            if let Some(f) = competing_writer {
                f(self);
            }
            if let Some((contended, writes)) = self.contended.borrow_mut().as_mut()
                && cas.is_some()
                && contended == key
                && *writes > 0
            {
                *writes -= 1;
                return Err(StoreError::CasMismatch);
            }
            let mut data = self.data.borrow_mut();
            if let (Some(cas), Some((_, current))) = (cas, data.get(key))
                && cas != *current
            {
                return Err(StoreError::CasMismatch);
            }
            self.next_cas.set(self.next_cas.get() + 1);
            data.insert(key.to_owned(), (value.to_vec(), self.next_cas.get()));
            Ok(())
        }
    }

    #[test]
    fn update_retries_after_a_concurrent_write() {
        let store = MemoryStore::default();
        store.put("n", b"1", None).unwrap();
        store.interleave(|s| {
            let (_, cas) = s.get("n").unwrap();
            s.put("n", b"5", Some(cas)).unwrap();
        });
        let mut seen = Vec::new();
        update::<()>(&store, "n", |v| {
            let n: u32 = std::str::from_utf8(v.unwrap()).unwrap().parse().unwrap();
            seen.push(n);
            Ok((n + 1).to_string().into_bytes())
        })
        .unwrap()
        .unwrap();
        assert_eq!(seen, vec![1, 5], "the first attempt lost the race and was retried");
        assert_eq!(store.raw("n").unwrap(), b"6");
    }

    #[test]
    fn update_can_abort_without_writing() {
        let store = MemoryStore::default();
        let r = update(&store, "k", |_| Err("no")).unwrap();
        assert_eq!(r, Err("no"));
        assert!(store.raw("k").is_none());
    }
}
