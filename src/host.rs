//! What the core needs from the host: a shared key-value store with compare-and-swap
//! (proxy-wasm shared data, shared by every worker of the VM). The time comes in as arguments.
//! The filter shell implements them over proxy-wasm; tests use [`memory`].

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
