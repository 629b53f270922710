// The few extension APIs this example calls, typed by hand (the project does not depend on
// @types/chrome). Shapes follow developer.chrome.com/docs/extensions/reference; only the members
// used here are declared.

declare namespace chrome {
  namespace runtime {
    const id: string;
    function getURL(path: string): string;
  }

  namespace sidePanel {
    function setPanelBehavior(behavior: { openPanelOnActionClick?: boolean }): Promise<void>;
  }

  namespace tabs {
    interface Tab {
      id?: number;
      windowId: number;
      index: number;
      active: boolean;
      /** Present for pages the extension has host permissions for (or with the `tabs` permission). */
      url?: string;
      title?: string;
      favIconUrl?: string;
      status?: 'unloaded' | 'loading' | 'complete';
    }
    interface QueryInfo {
      active?: boolean;
      windowId?: number;
      url?: string | string[];
    }
    function query(info: QueryInfo): Promise<Tab[]>;
    const onUpdated: events.Event<(tabId: number, change: { status?: string; url?: string; title?: string }, tab: Tab) => void>;
    const onRemoved: events.Event<(tabId: number) => void>;
    const onCreated: events.Event<(tab: Tab) => void>;
  }

  namespace windows {
    interface Window {
      id?: number;
      focused: boolean;
      type?: 'normal' | 'popup' | 'panel' | 'app' | 'devtools';
    }
    function getLastFocused(opts?: { windowTypes?: Array<'normal' | 'popup' | 'panel' | 'app' | 'devtools'> }): Promise<Window>;
  }

  namespace scripting {
    interface InjectionTarget {
      tabId: number;
      frameIds?: number[];
      allFrames?: boolean;
    }
    interface InjectionResult<T> {
      frameId: number;
      documentId?: string;
      result?: T;
    }
    function executeScript<T>(injection: { target: InjectionTarget; files: string[] }): Promise<InjectionResult<T>[]>;
    function executeScript<Args extends unknown[], T>(injection: {
      target: InjectionTarget;
      func: (...args: Args) => T;
      args?: Args;
    }): Promise<InjectionResult<Awaited<T>>[]>;
  }

  namespace events {
    interface Event<F> {
      addListener(listener: F): void;
      removeListener(listener: F): void;
    }
  }
}
